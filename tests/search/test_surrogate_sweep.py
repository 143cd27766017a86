"""A sweep of surrogate trials (``search.trainable: surrogate``): the real Tune + Optuna
+ ASHA + results machinery, each trial the known function of ``trainables.surrogate``."""

from __future__ import annotations

import os

import pytest

import search.sweep
from search.results import config_from_row, read_table
from search.sweep import SweepPlan, run_sweep
from spaces.config import TrialConfig
from spaces.presets import load_preset
from trainables.surrogate import surrogate_metrics

pytestmark = pytest.mark.ray


def test_surrogate_sweep_reports_the_known_function(ray_local, tmp_path):
    preset = load_preset("demo")
    sweep = preset.sweep_config(trials=16, concurrency=4, trainable="surrogate",
                                surrogate_seconds=0.4, surrogate_reports=4, asha_grace=1)
    plan = SweepPlan(storage=str(tmp_path), name="sur", base=preset.trial_config(), sweep=sweep)
    run_sweep(plan)
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "auto"  # snapshots scale with the state

    trials = read_table(plan.path, "trials").to_pylist()
    assert len(trials) == 16 and len({t["trial_id"] for t in trials}) == 16
    assert {t["status"] for t in trials} <= {"finished", "stopped"}
    assert any(t["status"] == "stopped" for t in trials), "ASHA stopped no trial"
    finished = [t for t in trials if t["status"] == "finished"]
    assert finished
    for row in finished:  # a finished trial reports the function's value for its config
        cfg = TrialConfig.from_dict(config_from_row(row))
        assert row["objective"] == pytest.approx(surrogate_metrics(cfg)["score"], abs=1e-12)
        assert row["target_step"] == 4  # its last report: step 4 × grace 1
    history = read_table(plan.path, "history").to_pylist()
    steps = {}
    for h in history:
        steps.setdefault(h["trial_id"], []).append(h["target_step"])
    for row in finished:  # every report reached the history, its score climbing to the end
        assert sorted(steps[row["trial_id"]]) == [1, 2, 3, 4]


def test_snapshot_period_follows_the_trainable_unless_the_user_set_it(monkeypatch):
    preset = load_preset("demo")
    monkeypatch.setattr(search.sweep, "_USER_SNAPSHOT", None)
    assert search.sweep._snapshot_period(preset.sweep_config(trainable="surrogate")) == "auto"
    assert search.sweep._snapshot_period(preset.sweep_config(trainable="model")) == "1"
    monkeypatch.setattr(search.sweep, "_USER_SNAPSHOT", "30")
    assert search.sweep._snapshot_period(preset.sweep_config(trainable="surrogate")) == "30"
