"""A sweep of surrogate trials (``search.trainable: surrogate``): the real Tune + Optuna
+ ASHA + results machinery, each trial the known function of ``trainables.surrogate`` with
a model trial's two phases (a noisy probe at the rungs in phase 2)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import optuna
import pytest

import search.sweep
import search.tune_trials
from search.results import config_from_row, read_table
from search.sweep import SweepPlan, run_sweep
from search.tune_trials import surrogate_trial
from tests.search.test_report import assert_exported_like_the_live_study
from spaces.config import TrialConfig
from spaces.objective import BUDGET_KEY, DONE_KEY, TUNE_KEYS
from spaces.presets import load_preset
from spaces.space import suggested_config
from trainables.surrogate import surrogate_curve, surrogate_metrics, surrogate_phases


class _Clock:
    """A fake clock: sleeping moves it on."""

    def __init__(self):
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


@pytest.mark.parametrize("two_phase", [True, False])
def test_a_surrogate_trial_reports_at_its_rungs_and_lasts_as_long_as_its_steps(
        monkeypatch, tmp_path, two_phase):
    preset = load_preset("paper-base")
    sweep = preset.sweep_config(two_phase=two_phase)  # rungs 4k, 12k, 36k, ...
    base = preset.trial_config()
    params = {"task/squad": True, "task/mnli": True, "mixing": "proportional",
              "learning_rate": 1.5e-5, "warmup_ratio": 0.1, "intermediate_steps": 10000}
    cfg = suggested_config(base, params, sweep.space)
    assert surrogate_phases(cfg) == (10000, 24544)
    clock, reports = _Clock(), []
    monkeypatch.setattr(search.tune_trials, "time", clock)
    monkeypatch.setattr(search.tune_trials.ray.tune, "report",
                        lambda metrics: reports.append((clock.now - 100.0, metrics)))
    monkeypatch.setattr(search.tune_trials.ray.tune, "get_context",
                        lambda: SimpleNamespace(get_trial_id=lambda: "t0"))
    surrogate_trial(params, base=base.to_dict(), spec=sweep.space.to_dict(),
                    sweep_path=str(tmp_path), rungs=sweep.rungs(10**9), two_phase=two_phase,
                    seconds_per_step=0.001, reports=2)

    # two-phase: the budget counts both phases, rungs 4k (a probe) and 12k (phase 3); else
    # it counts phase-3 steps, after phase 2 ran without a report: rungs 4k and 12k of phase 3
    start_3 = 10000 if two_phase else 0
    expected = sorted({4000, 12000, start_3 + 12272, start_3 + 24544})
    assert [m[BUDGET_KEY] for _, m in reports] == expected
    for seconds, m in reports:
        assert set(m) <= set(TUNE_KEYS) | {"done"}
        ran = m[BUDGET_KEY] + (0 if two_phase else 10000)  # steps run, phase 2 included
        assert seconds == pytest.approx(ran * 0.001)
        assert {k: m[k] for k in ("score", "zs_accuracy", "zs_ece")} == \
            surrogate_curve(cfg, m[BUDGET_KEY], two_phase=two_phase)
    # done only where true: a key Tune sees once it keeps statistics of to the end
    assert [m.get(DONE_KEY) for _, m in reports] == [None] * (len(expected) - 1) + [True]
    assert [m.get("done") for _, m in reports] == [None] * (len(expected) - 1) + [True]
    assert reports[-1][1]["score"] == surrogate_metrics(cfg)["score"]
    if two_phase:
        assert reports[0][1]["score"] < reports[-1][1]["score"]  # a probe, at 40 % of phase 2


def _history(path):
    out = {}
    for h in read_table(path, "history").to_pylist():
        out.setdefault(h["trial_id"], []).append(h)
    return {k: sorted(v, key=lambda h: h["budget"]) for k, v in out.items()}


@pytest.mark.ray
def test_two_phase_asha_stops_surrogate_trials_in_phase_2(ray_local, tmp_path):
    preset = load_preset("demo")  # phase 2: 200-500 steps, phase 3: 40; rungs 200, 400
    sweep = preset.sweep_config(trials=16, concurrency=4, trainable="surrogate",
                                surrogate_seconds=0.5, surrogate_reports=2)
    rungs = [r for r in sweep.rungs(10**9) if r < 540]  # below the longest trial's budget
    assert sweep.two_phase and rungs == [200, 400]
    base = preset.trial_config()
    plan = SweepPlan(storage=str(tmp_path), name="sur", base=base, sweep=sweep)
    outcome = run_sweep(plan)
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "auto"  # snapshots scale with the state

    trials = read_table(plan.path, "trials").to_pylist()
    assert len(trials) == 16 and len({t["trial_id"] for t in trials}) == 16
    assert {t["status"] for t in trials} <= {"finished", "stopped"}
    history = _history(plan.path)
    configs = {t["trial_id"]: TrialConfig.from_dict(config_from_row(t)) for t in trials}
    stopped_in_phase_2 = [t for t in trials if t["status"] == "stopped"
                          and t["budget"] <= configs[t["trial_id"]].intermediate_steps]
    assert stopped_in_phase_2, "ASHA stopped no trial in phase 2"
    finished = [t for t in trials if t["status"] == "finished"]
    assert finished
    for t in trials:
        cfg = configs[t["trial_id"]]
        steps_2, steps_3 = surrogate_phases(cfg)
        total = steps_2 + steps_3
        points = sorted({r for r in rungs if r < total} | {steps_2 + 20, total})
        seen = [h["budget"] for h in history[t["trial_id"]]]
        assert seen == points[:len(seen)] and seen[-1] == t["budget"]  # every report kept
        for h in history[t["trial_id"]]:  # what the trial reported there: a probe in phase 2
            assert h["objective"] == surrogate_curve(cfg, h["budget"], two_phase=True)["score"]
        if t["status"] == "finished":  # the function's final value for its config
            assert t["budget"] == total
            assert t["objective"] == pytest.approx(surrogate_metrics(cfg)["score"], abs=1e-12)
    budgets = [(h["budget"], configs[k].intermediate_steps)
               for k, hs in history.items() for h in hs]
    assert any(b <= steps for b, steps in budgets), "no phase-2 probe in the history"
    assert any(b > steps for b, steps in budgets), "no phase-3 report in the history"

    # Optuna learned from the stopped trials as pruned, their values keyed by budget
    pruned = [t for t in outcome.study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(pruned) == len([t for t in trials if t["status"] == "stopped"])
    for t in pruned:
        cfg = suggested_config(base, t.params, sweep.space)
        assert set(t.intermediate_values) <= set(rungs)
        assert t.intermediate_values[max(t.intermediate_values)] == \
            surrogate_curve(cfg, max(t.intermediate_values), two_phase=True)["score"]
    assert any(max(t.intermediate_values) <= suggested_config(base, t.params, sweep.space)
               .intermediate_steps for t in pruned)
    assert_exported_like_the_live_study(plan.path, outcome.study, tmp_path)


@pytest.mark.ray
def test_phase_3_asha_counts_phase_3_steps(ray_local, tmp_path):
    preset = load_preset("demo")
    sweep = preset.sweep_config(trials=8, concurrency=4, trainable="surrogate",
                                surrogate_seconds=0.3, two_phase=False, asha_grace=20)
    plan = SweepPlan(storage=str(tmp_path), name="sur3", base=preset.trial_config(), sweep=sweep)
    run_sweep(plan)
    trials = read_table(plan.path, "trials").to_pylist()
    assert len(trials) == 8
    for t in trials:  # the demo target's phase 3: 40 steps, its rung at 20
        assert t["budget"] == (40 if t["status"] == "finished" else 20)
    for hs in _history(plan.path).values():
        assert [h["budget"] for h in hs] in ([20], [20, 40])


def test_snapshot_period_follows_the_trainable_unless_the_user_set_it(monkeypatch):
    preset = load_preset("demo")
    monkeypatch.setattr(search.sweep, "_USER_SNAPSHOT", None)
    assert search.sweep._snapshot_period(preset.sweep_config(trainable="surrogate")) == "auto"
    assert search.sweep._snapshot_period(preset.sweep_config(trainable="model")) == "5"
    monkeypatch.setattr(search.sweep, "_USER_SNAPSHOT", "30")
    assert search.sweep._snapshot_period(preset.sweep_config(trainable="surrogate")) == "30"
