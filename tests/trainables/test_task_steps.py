"""Each of the 18 tasks, read from its fixture through the registry, trains one step
and is scored with the tiny model, through the same loading and scoring a trial uses
(``load_trial_data``, ``MultiTaskModel``, ``task_loss``, ``evaluate``)."""

from __future__ import annotations

import math

import pytest
import torch

from spaces.config import TrialConfig
from spaces.models import EMBEDDED_TINY
from spaces.tasks import PAPER_INTERMEDIATE, get_task
from trainables.data import load_rows
from trainables.encoding import encode
from trainables.embedded_default import resolve_checkpoint
from trainables.evaluation import METRIC_KEYS, evaluate, score_split
from trainables.model import MultiTaskModel, task_loss
from trainables.trial_data import load_trial_data, trial_splits

#: target -> the languages its fixture has (for retrieval: paired with English)
TARGET_LANGUAGES = {
    "xnli": ("en", "ar", "de"), "pawsx": ("en", "de", "ja"), "udpos": ("en", "de", "ru"),
    "panx": ("en", "de", "zh"), "xquad": ("en", "de", "ru"), "mlqa": ("en", "de", "zh"),
    "tydiqa": ("en", "ar", "fi"), "bucc": ("de", "zh"), "tatoeba": ("de", "ja"),
}
CPU = torch.device("cpu")
SMALL = dict(max_length=128, batch_size=4, learning_rate=1e-3, seed=0)


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModel, AutoTokenizer

    path = resolve_checkpoint(EMBEDDED_TINY)
    return AutoTokenizer.from_pretrained(path), lambda: AutoModel.from_pretrained(
        path, add_pooling_layer=False)


def _one_step(model: MultiTaskModel, head: str, data) -> float:
    torch.manual_seed(0)
    before = {n: p.detach().clone() for n, p in model.heads[head].named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    batch = data.batch(torch.arange(min(4, len(data))).numpy())
    loss = task_loss(model.formats[head], model(head, batch["input_ids"], batch["attention_mask"]),
                     batch)
    loss.backward()
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads), "no gradient reached the encoder"
    opt.step()
    moved = [n for n, p in model.heads[head].named_parameters() if not torch.equal(p, before[n])]
    assert moved, f"{head}: one step changed no head parameter"
    model.eval()
    return loss.item()


def _fraction(x: float) -> bool:
    return 0.0 <= x <= 1.0


def test_every_registered_task_is_covered():
    assert len(PAPER_INTERMEDIATE) == 9 and len(TARGET_LANGUAGES) == 9
    assert all(get_task(t).role == "target" for t in TARGET_LANGUAGES)


@pytest.mark.parametrize("name", PAPER_INTERMEDIATE)
def test_intermediate_task_trains_one_step_and_is_scored(name, mirror, tiny):
    tokenizer, encoder = tiny
    task = get_task(name)
    cfg = TrialConfig(target="xnli", intermediate_tasks=(name,), intermediate_steps=1, **SMALL)
    data = load_trial_data(cfg, tokenizer, scoring=False)
    model = MultiTaskModel(encoder(), [task], num_labels=data.num_labels)
    loss = _one_step(model, name, data.inter_train[name])
    assert math.isfinite(loss) and loss > 0
    dev = encode(task, load_rows(task, "dev", "en"), tokenizer, max_length=128,
                 max_query_length=32, label_names=data.tag_names.get(name))
    m = score_split(model, task, dev, CPU, language="en", temperature=2.0)
    assert _fraction(m[METRIC_KEYS[task.metric]]), m
    for key in ("ece", "mce", "brier", "ece_ts", "mce_ts", "brier_ts"):
        assert _fraction(m[key]), (key, m)
    if task.format == "span_qa":
        assert _fraction(m["exact_match"]) and m["exact_match"] <= m["f1"] + 1e-12


@pytest.mark.parametrize("name", sorted(TARGET_LANGUAGES))
def test_target_trains_one_step_and_scores_every_language(name, mirror, tiny):
    tokenizer, encoder = tiny
    target = get_task(name)
    langs = TARGET_LANGUAGES[name]
    cfg = TrialConfig(target=name, intermediate_tasks=(), intermediate_steps=0,
                      eval_languages=langs, **SMALL)
    data = load_trial_data(cfg, tokenizer)
    model = MultiTaskModel(encoder(), [target], num_labels=data.num_labels)
    if target.format == "retrieval":
        assert data.target_train is None and data.en_dev is None and not model.heads
    else:
        assert math.isfinite(_one_step(model, name, data.target_train))
    m = evaluate(model, target, data.eval_sets, data.en_dev, cfg, CPU, fit_sets=data.fit_sets)

    key = METRIC_KEYS[target.metric]
    zero_shot = [lang for lang in langs if lang != target.train_language]
    assert sorted({k.split("/")[0] for k in m if "/" in k}) == sorted(data.eval_sets)
    for lang in data.eval_sets:
        assert _fraction(m[f"{lang}/{key}"]), (lang, m)
    assert m["zs_accuracy"] == pytest.approx(sum(m[f"{l}/{key}"] for l in zero_shot) / len(zero_shot))
    if target.format == "retrieval":  # calibrated as trainables.metrics defines it
        for lang in data.eval_sets:
            assert _fraction(m[f"{lang}/ece"]) and f"{lang}/ece_ts" not in m, (lang, m)
        if name == "bucc":  # test scored, with dev fitting its threshold and Platt scaling
            assert sorted(data.fit_sets) == sorted(data.eval_sets)
            splits = {(r.role, r.split) for r in trial_splits(cfg) if r.role in ("eval", "fit")}
            assert splits == {("eval", "test"), ("fit", "dev")}
        else:
            assert m["temperature"] > 0 and not data.fit_sets
        assert m["score"] == pytest.approx(m["zs_accuracy"] - m["zs_ece"])
    else:
        assert m["temperature"] > 0
        for lang in data.eval_sets:
            for cal in ("ece", "ece_ts", "brier"):
                assert _fraction(m[f"{lang}/{cal}"]), (lang, cal, m)
        assert m["score"] == pytest.approx(m["zs_accuracy"] - m["zs_ece"])
