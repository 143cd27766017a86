"""Real trials through Ray Train mixing every trainable format, on the fixtures of the
hub schemas (``XSTILTS_DATA_DIR``) with the tiny model: a span-QA target after one
intermediate task of each format, and a retrieval target scored without target training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from spaces.config import TrialConfig
from spaces.tasks import get_task
from trainables.data import DATA_DIR_ENV
from trainables.mixing import TaskSampler, task_probabilities

pytestmark = pytest.mark.ray

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xtreme"
EACH_FORMAT = ("mnli", "hellaswag", "squad", "ccg")  # classification, choice, span QA, tagging
SMALL = dict(batch_size=4, max_length=128, learning_rate=1e-3, target_epochs=1.0, seed=0)


@pytest.fixture
def fixture_ray(no_ray_here, monkeypatch, embedded_cache):
    """A local Ray started with the fixture mirror in its environment (workers inherit it),
    shut down afterwards so that later tests get a Ray without it."""
    import ray

    from search.local_ray import ensure_ray

    monkeypatch.setenv(DATA_DIR_ENV, str(FIXTURES))
    ensure_ray(num_cpus=2, log_to_driver=False)
    yield
    ray.shutdown()


def test_one_intermediate_of_each_format_then_a_qa_target(fixture_ray, tmp_path):
    from trainables.trial import run_trial

    assert sorted(get_task(t).format for t in EACH_FORMAT) == \
        ["classification", "multiple_choice", "span_qa", "tagging"]
    steps = 12
    # the seeded sampler draws every task within these steps (so each format trains)
    draws = TaskSampler(task_probabilities("softmax", sizes={t: 1 for t in EACH_FORMAT},
                                           logits={t: 0.0 for t in EACH_FORMAT}), seed=0)
    assert set(draws.draw() for _ in range(steps)) == set(EACH_FORMAT)

    cfg = TrialConfig(target="xquad", intermediate_tasks=EACH_FORMAT, intermediate_steps=steps,
                      eval_languages=("en", "de", "ru"), **SMALL)
    result = run_trial(cfg, storage_path=str(tmp_path), name="formats", keep_checkpoints=None)
    m = result.metrics
    assert m["finished"] is True and m["phase"] == "target"
    assert m["intermediate_steps_run"] == steps and m["step"] > steps  # then SQuAD training
    for lang in ("en", "de", "ru"):
        for key in ("f1", "exact_match", "ece", "mce", "brier", "ece_ts"):
            assert 0.0 <= m[f"{lang}/{key}"] <= 1.0, (lang, key, m)
        assert m[f"{lang}/exact_match"] <= m[f"{lang}/f1"] + 1e-12
    assert m["zs_accuracy"] == pytest.approx((m["de/f1"] + m["ru/f1"]) / 2)
    assert m["score"] == pytest.approx(m["zs_accuracy"] - m["zs_ece"])
    assert m["temperature"] > 0 and math.isfinite(m["target_loss"])


def test_retrieval_target_is_scored_on_the_intermediate_trained_encoder(fixture_ray, tmp_path):
    from trainables.trial import run_trial

    cfg = TrialConfig(target="bucc", intermediate_tasks=("squad", "ccg"), intermediate_steps=4,
                      eval_languages=("de", "zh"), retrieval_layer=1, **SMALL)
    result = run_trial(cfg, storage_path=str(tmp_path), name="bucc", keep_checkpoints=None)
    m = result.metrics
    assert m["finished"] is True and m["target_steps"] == 0
    assert m["intermediate_steps_run"] == 4 and m["step"] == 4  # no target training
    for lang in ("de", "zh"):
        assert 0.0 <= m[f"{lang}/f1"] <= 1.0
    assert m["zs_accuracy"] == pytest.approx((m["de/f1"] + m["zh/f1"]) / 2)
    assert "en/f1" not in m  # English is the side each pair shares
    # test scored with dev's threshold, calibrated by Platt scaling fitted on dev
    for lang in ("de", "zh"):
        assert 0.0 <= m[f"{lang}/ece"] <= 1.0 and 0.0 <= m[f"{lang}/brier"] <= 2.0
        assert m[f"{lang}/platt_a"] == m[f"{lang}/platt_a"]  # fitted (not NaN)
    assert m["score"] == pytest.approx(m["zs_accuracy"] - m["zs_ece"])
    # one report, with its checkpoint: a restart re-reports it instead of training again
    assert len(result.best_checkpoints) == 1
