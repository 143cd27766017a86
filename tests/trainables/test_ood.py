"""Out-of-domain evaluation sets (``TrialConfig.ood_targets``): scored by the target's head
in every language they share with it, stored per language like the main set, and in the
objective only when ``ood_in_objective`` says so. The demo's set, demo-sentiment-ood, asks
the target's question about one topic in other wordings."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from search.results import language_rows
from spaces.config import ConfigError, TrialConfig
from spaces.models import EMBEDDED_TINY
from spaces.tasks import get_task
from trainables import demo_suite
from trainables.embedded_default import demo_suite_dir, resolve_checkpoint
from trainables.evaluation import evaluate
from trainables.model import MultiTaskModel
from trainables.trial_data import load_trial_data

CPU = torch.device("cpu")
OOD = "demo-sentiment-ood"


def test_the_demo_ood_set_shares_the_label_space_but_not_the_wording():
    root = demo_suite_dir()
    ood = [json.loads(line) for line in (root / OOD / "dev.en.jsonl").read_text().splitlines()]
    home = [json.loads(line)
            for line in (root / "demo-sentiment" / "dev.en.jsonl").read_text().splitlines()]
    assert {r["label"] for r in ood} == {r["label"] for r in home} == {0, 1}
    starts = {r["text_a"].split()[0] for r in ood}
    assert starts == {"it", "but"} and not starts & {r["text_a"].split()[0] for r in home}
    topic = {c.forms["en"]: c.topic for c in demo_suite.build_lexicon(0)}
    words = [w for r in ood for w in (r["text_a"] + " " + r["text_b"]).split() if w in topic]
    assert words and {topic[w] for w in words} == {demo_suite.OOD_TOPIC}
    # the tokenizer never saw it: the suite's corpus leaves it out
    assert not any(line in demo_suite.corpus(root) for line in (ood[0]["text_a"],))


def test_ood_sets_are_scored_stored_and_enter_the_objective_only_when_asked():
    from transformers import AutoModel, AutoTokenizer

    path = resolve_checkpoint(EMBEDDED_TINY)
    tokenizer = AutoTokenizer.from_pretrained(path)
    cfg = TrialConfig(intermediate_steps=0, ood_targets=(OOD,), max_eval_examples=64,
                      max_length=48)
    target = get_task(cfg.target)
    data = load_trial_data(cfg, tokenizer)
    assert sorted(data.ood_sets[OOD]) == sorted(target.languages)
    torch.manual_seed(0)
    model = MultiTaskModel(AutoModel.from_pretrained(path, add_pooling_layer=False), [target],
                           num_labels=data.num_labels)
    model.eval()
    m = evaluate(model, target, data.eval_sets, data.en_dev, cfg, CPU, ood_sets=data.ood_sets)
    for lang in target.languages:
        for key in ("accuracy", "ece", "ece_ts", "brier", "bin15_count"):
            assert f"{OOD}/{lang}/{key}" in m or key.startswith("bin"), (lang, key)
    zero_shot = [lang for lang in target.languages if lang != "en"]
    assert m[f"{OOD}/zs_accuracy"] == pytest.approx(
        sum(m[f"{OOD}/{lang}/accuracy"] for lang in zero_shot) / len(zero_shot))
    assert m["score"] == pytest.approx(m["zs_accuracy"] - m["zs_ece"])  # left out
    both = dataclasses.replace(cfg, ood_in_objective=True)
    m2 = evaluate(model, target, data.eval_sets, data.en_dev, both, CPU, ood_sets=data.ood_sets)
    assert m2["score"] == pytest.approx((m["zs_accuracy"] + m[f"{OOD}/zs_accuracy"]) / 2
                                        - (m["zs_ece"] + m[f"{OOD}/zs_ece"]) / 2)
    assert m2["zs_accuracy"] == m["zs_accuracy"]  # the column stays the target's own

    rows = language_rows("t1", cfg, m)  # what the languages table gets
    by_task = {task: {(r["language"], r["metric"]) for r in rows if r["task"] == task}
               for task in ("demo-sentiment", OOD)}
    assert ("sw", "ece_ts") in by_task[OOD] and ("sw", "ece_ts") in by_task["demo-sentiment"]
    assert {k for k in by_task[OOD] if not k[1].startswith("bin")} == \
        {k for k in by_task["demo-sentiment"] if not k[1].startswith("bin")}


def test_ood_sets_must_share_the_targets_format_labels_and_a_language():
    assert TrialConfig(ood_targets=(OOD,)).ood_targets == (OOD,)
    with pytest.raises(ConfigError, match="'xnli' cannot be scored by target 'demo-sentiment'"):
        TrialConfig(ood_targets=("xnli",))
    with pytest.raises(ConfigError, match="'nope' is not a target task; choose among those of "
                                          "target 'demo-sentiment'.*demo-sentiment-ood"):
        TrialConfig(ood_targets=("nope",))
    with pytest.raises(ConfigError, match="ood_in_objective=true needs ood_targets"):
        TrialConfig(ood_in_objective=True)
    # a config without them keeps the hash it had before they existed
    assert TrialConfig().config_hash() == TrialConfig(ood_targets=(), ood_in_objective=False) \
        .config_hash()
