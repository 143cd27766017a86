import json

from trainables import demo_suite
from trainables.embedded import demo_suite_dir, tiny_model_dir


def test_tiny_model_loads_through_from_pretrained_and_is_xlmr():
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    path = tiny_model_dir()
    assert AutoConfig.from_pretrained(path).model_type == "xlm-roberta"
    tok = AutoTokenizer.from_pretrained(path)
    assert type(tok).__name__ == "XLMRobertaTokenizer"
    model = AutoModel.from_pretrained(path, add_pooling_layer=False)
    assert model.config.num_hidden_layers == 2
    ids = tok("the kone was", "it was")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id


def test_build_is_deterministic(tmp_path):
    demo_suite.write_suite(tmp_path / "a")
    demo_suite.write_suite(tmp_path / "b")
    for path in sorted((tmp_path / "a").rglob("*.jsonl")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    assert (tiny_model_dir() / "BUILD").read_text().startswith("tiny xlm-r")


def test_suite_shape_languages_and_anchors():
    root = demo_suite_dir()
    for lang in demo_suite.LANGUAGES:
        assert (root / "demo-sentiment" / f"test.{lang}.jsonl").exists()
    assert not (root / "demo-sentiment" / "train.de.jsonl").exists()  # English training only
    row = json.loads((root / "demo-match" / "train.en.jsonl").read_text().splitlines()[0])
    assert len(row["choices"]) == 4 and 0 <= row["label"] < 4
    lexicon = demo_suite.build_lexicon()
    for lang, share in demo_suite.ANCHOR_SHARE.items():
        shared = sum(c.forms[lang] == c.forms["en"] for c in lexicon) / len(lexicon)
        assert abs(shared - share) < 0.1, (lang, shared)
