"""``task@lang`` through the data path: the right language's rows from the fixture
mirror and the demo suite, their own token-cache entries, and phase-2 steps on them
with the tiny model, as a trial takes them (``load_trial_data``, ``TaskSampler``,
``Cursor``, ``TrainStep``)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from spaces.config import TrialConfig
from spaces.models import EMBEDDED_TINY
from spaces.tasks import get_task
from trainables import demo_suite
from trainables.data import Cursor, load_rows, mirror_file
from trainables.embedded_default import demo_suite_dir, resolve_checkpoint
from trainables.mixing import TaskSampler, task_probabilities
from trainables.model import MultiTaskModel
from trainables.step import TrainStep, make_optimizer
from trainables.token_cache import tokens_root
from trainables.trial_data import load_trial_data, trial_splits

CPU = torch.device("cpu")


def _fixture_rows(mirror, task: str, split: str, lang: str) -> list[dict]:
    path = mirror / task / f"{split}.{lang}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_xnli_at_de_reads_the_german_training_rows_of_the_mirror(mirror, tokenizer):
    task = get_task("xnli@de")
    assert mirror_file(task, "train", "de") == mirror / "xnli" / "train.de.jsonl"
    german = _fixture_rows(mirror, "xnli", "train", "de")
    english = _fixture_rows(mirror, "xnli", "train", "en")
    rows = load_rows(task, "train", task.train_language)
    assert rows["premise"] == [r["premise"] for r in german]
    assert rows["premise"] != [r["premise"] for r in english]

    cfg = TrialConfig(target="xnli", intermediate_tasks=("mnli", "xnli@de"), intermediate_steps=1,
                      max_length=128, batch_size=4, seed=0)
    inter = [(r.task, r.split, r.language) for r in trial_splits(cfg) if r.role == "inter_train"]
    assert inter == [("mnli", "train", "en"), ("xnli@de", "train", "de")]
    data = load_trial_data(cfg, tokenizer, scoring=False)
    encoded = data.inter_train["xnli@de"]
    assert encoded.labels.tolist() == [r["label"] for r in german]
    for i, row in enumerate(german):  # the German texts, as the trial tokenizes them
        want = tokenizer(row["premise"], row["hypothesis"], truncation=True, max_length=128)
        assert list(encoded.ids[i]) == want["input_ids"]
    # its own token-cache entry, beside (not instead of) the target's English one
    assert list((tokens_root() / "xnli@de").glob("train.de.*"))
    assert list((tokens_root() / "xnli").glob("train.en.*"))
    assert data.target_train.labels.tolist() == [r["label"] for r in english]


def _phase_two(cfg: TrialConfig, tokenizer, steps: int) -> tuple[list[str], list[float], dict]:
    """``steps`` phase-2 steps of ``cfg`` as the trial loop takes them (lean step, CPU):
    the tasks drawn, the losses, and which intermediate heads moved."""
    from transformers import AutoModel

    data = load_trial_data(cfg, tokenizer, scoring=False)
    torch.manual_seed(cfg.seed)
    encoder = AutoModel.from_pretrained(resolve_checkpoint(EMBEDDED_TINY), add_pooling_layer=False,
                                        attn_implementation="sdpa")
    model = MultiTaskModel(encoder, [get_task(n) for n in data.inter_train] + [data.target],
                           num_labels=data.num_labels)
    before = {n: p.detach().clone() for n, p in model.heads.named_parameters()}
    probs = task_probabilities(cfg.mixing, sizes={n: len(d) for n, d in data.inter_train.items()},
                               logits=cfg.mixing_logits(), temperature=cfg.mixing_temperature,
                               cap=cfg.examples_cap)
    sampler = TaskSampler(probs, seed=cfg.seed)
    cursors = {n: Cursor(n, len(d), seed=cfg.seed, global_batch=cfg.batch_size)
               for n, d in data.inter_train.items()}
    params = [p for n, p in model.named_parameters() if not n.startswith(f"heads.{cfg.target}.")]
    opt, sched = make_optimizer(params, cfg, steps, CPU)
    step = TrainStep(model, model, CPU, lean=True)
    model.train()
    drawn = []
    for n in range(1, steps + 1):
        task = sampler.draw()
        drawn.append(task)
        split = data.inter_train[task]
        step(task, step.batch(split, cursors[task].next(0, 1)), opt, sched, n, n - 1)
    losses = step.flush()
    moved = {name for name in data.inter_train
             if any(not torch.equal(p, before[k]) for k, p in model.heads.named_parameters()
                    if k.startswith(f"{name}."))}
    return drawn, losses, moved


def test_demo_polarity_at_de_trains_in_phase_two(tokenizer):
    cfg = TrialConfig(intermediate_tasks=("demo-polarity", "demo-polarity@de"),
                      weights={"demo-polarity@de": 1.0}, intermediate_steps=6, batch_size=8,
                      max_length=48, max_train_examples=64, learning_rate=2e-3, seed=0)
    drawn, losses, moved = _phase_two(cfg, tokenizer, steps=6)
    assert set(drawn) == {"demo-polarity", "demo-polarity@de"}, drawn
    assert len(losses) == 6 and all(math.isfinite(x) and x > 0 for x in losses)
    assert moved == {"demo-polarity", "demo-polarity@de"}  # one head each, both trained


def test_panx_at_fr_trains_a_step_on_the_french_rows(mirror, tokenizer):
    french = _fixture_rows(mirror, "panx", "train", "fr")
    cfg = TrialConfig(target="panx", intermediate_tasks=("panx@fr",), intermediate_steps=1,
                      max_length=64, batch_size=4, seed=0)
    data = load_trial_data(cfg, tokenizer, scoring=False)
    assert load_rows(get_task("panx@fr"), "train", "fr")["tokens"] == [r["tokens"] for r in french]
    assert data.tag_names["panx@fr"] == get_task("panx").labels
    drawn, losses, moved = _phase_two(cfg, tokenizer, steps=1)
    assert drawn == ["panx@fr"] and math.isfinite(losses[0]) and moved == {"panx@fr"}


def test_a_language_the_mirror_lacks_fails_when_loaded(mirror, tokenizer):
    from trainables.data import DataUnavailableError

    cfg = TrialConfig(target="xnli", intermediate_tasks=("xnli@fr",), intermediate_steps=1)
    with pytest.raises(DataUnavailableError, match=r"xnli@fr.*xnli/train\.fr\.jsonl"):
        load_trial_data(cfg, tokenizer, scoring=False)


def test_preflight_checks_the_mirror_file_of_the_language(mirror):
    from trainables.preflight import preflight

    assert preflight(["xnli", "xnli@de", "panx@fr", "demo-polarity@de"], []) == []
    problems = preflight(["xnli@fr"], [])
    assert len(problems) == 1 and str(mirror / "xnli" / "train.fr.jsonl") in problems[0]


# --- the demo suite's German polarity data ------------------------------------------------------
def _suite_rows(task: str, split: str, lang: str) -> list[dict]:
    path = demo_suite_dir() / task / f"{split}.{lang}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_german_polarity_rows_are_german_and_labelled_like_the_english():
    lexicon = demo_suite.build_lexicon()
    polarity_de = {c.forms["de"]: c.polarity for c in lexicon}
    english_only = {c.forms["en"] for c in lexicon} - set(polarity_de)
    the = demo_suite._FUNCTION["de"]["the"]
    assert get_task("demo-polarity").languages == (
        "en", *demo_suite.INTERMEDIATE_LANGUAGES["demo-polarity"])
    for split, n in demo_suite.SIZES["intermediate"].items():
        rows = _suite_rows("demo-polarity", split, "de")
        assert len(rows) == n and rows != _suite_rows("demo-polarity", split, "en")
        for row in rows:
            first, *words = row["text_a"].split(" ")
            assert first == the == "der"  # the German function word, not "the"
            assert all(w in polarity_de and w not in english_only for w in words), row
            polarities = {polarity_de[w] for w in words}
            assert (2 if row["label"] else 0) in polarities and polarities <= {row["label"] * 2, 1}
    train = _suite_rows("demo-polarity", "train", "de")
    own = sum(any(w not in {c.forms["en"] for c in lexicon} for w in r["text_a"].split()[1:])
              for r in train)
    assert own > len(train) / 10  # German forms of their own, not only the shared anchors
    assert {r["label"] for r in train} == {0, 1}
    # the registry reads them as demo-polarity@de
    loaded = load_rows(get_task("demo-polarity@de"), "train", "de")
    assert loaded["text_a"][:5] == [r["text_a"] for r in train[:5]]


def test_german_polarity_leaves_the_tokenizer_corpus_as_it_was(tmp_path):
    root = tmp_path / "suite"
    demo_suite.write_suite(root)
    with_german = demo_suite.corpus(root)
    assert not {r["text_a"] for r in _suite_rows("demo-polarity", "train", "de")} & set(with_german)
    for path in (root / "demo-polarity").glob("*.de.jsonl"):
        path.unlink()
    assert demo_suite.corpus(root) == with_german  # the tiny model's tokenizer is unchanged
