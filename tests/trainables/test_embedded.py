import json

from trainables import demo_suite
from trainables.embedded_default import _build_tiny, canonical_pieces, demo_suite_dir, tiny_model_dir


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
    for i in (1, 2):  # the trainer's own output differs between these in about half the runs
        _build_tiny(tmp_path / f"tiny{i}")
    for name in ("tokenizer.json", "model.safetensors", "BUILD"):
        assert (tmp_path / "tiny1" / name).read_bytes() == (tmp_path / "tiny2" / name).read_bytes()


def test_tokenizer_ids_do_not_follow_the_trainers_hash_order():
    # two real trainer outputs: the characters it must keep but did not learn get the
    # lowest score plus k·1e-4 in hash-set order ('c' and 'q' swapped)
    run_a = [["<s>", 0.0], ["▁ze", -6.38981], ["b", -14.85839], ["q", -14.86421],
             ["k", -14.86431], ["c", -14.86431]]
    run_b = [["<s>", 0.0], ["▁ze", -6.38981], ["b", -14.85839], ["c", -14.86421],
             ["k", -14.86431], ["q", -14.86431]]
    assert canonical_pieces(run_a) == canonical_pieces(run_b) == [
        ("▁ze", -6.39), ("b", -14.858), ("c", -14.864), ("k", -14.864), ("q", -14.864)]


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
