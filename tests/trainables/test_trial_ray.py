"""Real trials through Ray Train on CPU with the tiny model and the demo suite."""

import math

import pytest

from spaces.config import TrialConfig
from tests.trainables.test_calibration import assert_reliability_matches
from trainables.trial import run_trial

pytestmark = pytest.mark.ray

SMALL = dict(intermediate_tasks=("demo-polarity", "demo-match"), intermediate_steps=30,
             target_epochs=1.0, batch_size=16, max_length=48, learning_rate=2e-3,
             max_train_examples=96, max_eval_examples=64, eval_every=3, seed=0)


def _checkpoints(result):
    return sorted(result.best_checkpoints, key=lambda cm: cm[1]["step"])


def test_one_trial_trains_and_scores_every_language(ray_local, tmp_path):
    cfg = TrialConfig(**SMALL)
    result = run_trial(cfg, storage_path=str(tmp_path), name="one", keep_checkpoints=None)
    m = result.metrics
    assert m["finished"] is True and m["phase"] == "target"
    steps_3 = math.ceil(96 / 16)
    assert m["step"] == 30 + steps_3 and m["intermediate_steps_run"] == 30
    for lang in ("en", "de", "fr", "sw"):
        for key in ("accuracy", "ece", "mce", "brier", "nll", "ece_ts", "nll_ts"):
            assert 0.0 <= m[f"{lang}/{key}"] < 10, (lang, key)
        assert 0.0 <= m[f"{lang}/accuracy"] <= 1.0 and 0.0 <= m[f"{lang}/ece"] <= 1.0
        # the reliability diagram's numbers, raw and temperature-scaled, give back the ECE
        bins = {k.split("/", 1)[1]: v for k, v in m.items() if k.startswith(f"{lang}/bin")}
        n = SMALL["max_eval_examples"]
        assert assert_reliability_matches(bins, ece=m[f"{lang}/ece"], n=n)
        assert assert_reliability_matches(bins, ece=m[f"{lang}/ece_ts"], n=n, suffix="_ts")
    assert not any(k.startswith("zs_bin") for k in m)  # bins are per language only
    zs = [m[f"{lang}/accuracy"] for lang in ("de", "fr", "sw")]
    assert m["zs_accuracy"] == pytest.approx(sum(zs) / 3)
    assert m["score"] == pytest.approx(m["zs_accuracy"] - m["zs_ece"])
    assert m["temperature"] > 0
    # one report at the end of phase 2, then every 3 phase-3 steps and at the end
    phases = [cm[1]["phase"] for cm in _checkpoints(result)]
    assert phases == ["intermediate", "target", "target"]


def test_continuing_from_first_checkpoint_skips_phase_two(ray_local, tmp_path):
    cfg = TrialConfig(**SMALL)
    full = run_trial(cfg, storage_path=str(tmp_path), name="full", keep_checkpoints=None)
    first, first_metrics = _checkpoints(full)[0]
    assert first_metrics["phase"] == "intermediate" and first_metrics["step"] == 30

    resumed = run_trial(cfg, storage_path=str(tmp_path), name="resumed", resume_from=first)
    m = resumed.metrics
    assert m["step"] == full.metrics["step"]
    assert m["intermediate_steps_run"] == 0  # phase 2 was not redone
    # the same data order, sampler and RNG state: the same model at the end
    assert m["en/accuracy"] == pytest.approx(full.metrics["en/accuracy"], abs=1e-6)
    assert m["score"] == pytest.approx(full.metrics["score"], abs=1e-6)


def test_checkpoint_of_another_config_is_refused(ray_local, tmp_path):
    from ray.train import TrainingFailedError

    cfg = TrialConfig(**SMALL)
    full = run_trial(cfg, storage_path=str(tmp_path), name="a", keep_checkpoints=None)
    with pytest.raises(TrainingFailedError, match="written by config"):
        run_trial(cfg.replace(seed=5), storage_path=str(tmp_path), name="b",
                  resume_from=full.checkpoint)


def test_two_workers_ddp_on_cpu(ray_local, tmp_path):
    cfg = TrialConfig(**{**SMALL, "num_workers": 2, "intermediate_steps": 10})
    m = run_trial(cfg, storage_path=str(tmp_path), name="ddp").metrics
    assert m["finished"] is True and m["step"] == 10 + math.ceil(96 / 16)
    assert 0.0 <= m["zs_accuracy"] <= 1.0
