"""Real sweeps: Ray Tune + Optuna + ASHA over Ray Train trials on CPU."""

import dataclasses
import json
import subprocess
import sys

import optuna
import pandas as pd
import pytest
import torch

from search.query import best, load_sweep, pareto
from search.report import domain_shift, reliability
from search.results import CORE_COLUMNS, SCHEMA_KEY, read_table
from search.sweep import SweepPlan, run_sweep
from spaces.config import TrialConfig
from spaces.objective import BUDGET_KEY, DONE_KEY, SCORE_KEY
from spaces.space import SpaceSpec
from spaces.sweep import SweepConfig
from tests.search.test_report import assert_exported_like_the_live_study
from tests.search.test_report_page import assert_report_renders
from tests.trainables.test_calibration import assert_reliability_matches

pytestmark = pytest.mark.ray

BASE = TrialConfig(intermediate_steps=20, target_epochs=1.0, batch_size=16, max_length=48,
                   max_train_examples=96, max_eval_examples=64, learning_rate=2e-3,
                   probe_steps=4, probe_examples=48, ood_targets=("demo-sentiment-ood",))
TARGET_STEPS = 6  # ceil(96 / 16)
SPACE = SpaceSpec(tasks=("demo-polarity", "demo-topic"), learning_rate=(1e-3, 4e-3),
                  intermediate_steps=(10, 30, 10), batch_size=(16,), target_epochs=(1.0,))


def _dominated(row, others) -> bool:
    return any(o["zs_accuracy"] >= row["zs_accuracy"] and o["zs_ece"] <= row["zs_ece"]
               and (o["zs_accuracy"], o["zs_ece"]) != (row["zs_accuracy"], row["zs_ece"])
               for o in others)


def _figures(finished: pd.DataFrame) -> set[str]:
    """The report's figures of a real sweep with these finished trials: all of them, but the
    effects only where a task is in some finished trials and not in others, and importances
    only from two finished trials."""
    tasks = [set(ts) for ts in finished["config/intermediate_tasks"]]
    varies = any(len({t in ts for ts in tasks}) == 2 for t in SPACE.tasks)
    return ({"progress", "calibration", "languages", "reliability", "cost"}
            | ({"effects"} if varies else set())
            | ({"importances"} if len(finished) > 1 else set()))


def test_asha_sweep_stops_trials_in_both_phases_prunes_them_in_optuna_and_writes_parquet(
        ray_local, tmp_path):
    # budget rungs 8 (phase 2 for every trial: a target probe) and 32 (phase 3 of the
    # 30-step trials); each trial ends at its phase-2 steps + 6
    sweep = SweepConfig(trials=8, concurrency=2, seed=0, startup_trials=4, asha_grace=8,
                        asha_reduction=4, space=SPACE, keep_models=2)
    plan = SweepPlan(storage=str(tmp_path), name="asha", base=BASE, sweep=sweep)
    outcome = run_sweep(plan)  # a stall on resources held by stopped trials would hang here

    table = read_table(plan.path, "trials")
    assert table.schema.metadata[SCHEMA_KEY] == b"3"
    assert [n for n, _ in CORE_COLUMNS] == table.column_names[:len(CORE_COLUMNS)]
    assert {"config/intermediate_tasks", "config/learning_rate", "config/seed"} <= set(table.column_names)
    df = table.to_pandas()
    assert len(df) == 8 and df["trial_id"].is_unique
    assert set(df["status"]) <= {"finished", "stopped"}
    stopped, finished = df[df["status"] == "stopped"], df[df["status"] == "finished"]
    total = df["config/intermediate_steps"] + TARGET_STEPS
    # how many async ASHA stops depends on the order scores reach the rung (scores that
    # arrive rising are all kept): with 8 trials it stopped 3 to 6 in our runs
    assert len(stopped) >= 1, df[["trial_id", "status", "budget", "objective"]]
    assert len(finished) >= 1
    assert (stopped["budget"] < total[stopped.index]).all()
    # early stopping reached into phase 2: a probe's score stopped a trial there
    in_phase_2 = stopped[stopped["budget"] <= stopped["config/intermediate_steps"]]
    assert len(in_phase_2) >= 1, df[["trial_id", "status", "budget", "config/intermediate_steps"]]
    assert in_phase_2["target_step"].isna().all()
    assert (finished["budget"] == total[finished.index]).all()
    assert (finished["target_step"] == TARGET_STEPS).all()
    assert df["objective"].notna().all()

    # Optuna learned stopped trials as pruned (with their intermediate values keyed by
    # budget), not complete
    states = pd.Series([t.state.name for t in outcome.study.trials]).value_counts().to_dict()
    assert states.get("PRUNED", 0) == len(stopped) and states.get("COMPLETE", 0) == len(finished)
    stopped_at = sorted(stopped["budget"])
    pruned_at = []
    for t in outcome.study.trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            # Optuna keeps a pruned trial's last intermediate value as its value
            last = t.intermediate_values[max(t.intermediate_values)]
            assert t.value == last and 8 in t.intermediate_values
            pruned_at.append(max(t.intermediate_values))
        else:
            assert t.value is not None
    assert sorted(pruned_at) == stopped_at

    # checkpoints that cost what they must: the best keep_models finished trials keep one
    # checkpoint, weights only; stopped trials and the rest keep none
    kept = df[df["checkpoint_path"].notna()]
    assert set(kept["status"]) <= {"finished"} and len(kept) == min(2, len(finished))
    assert set(kept["trial_id"]) == set(finished.nlargest(2, "objective")["trial_id"])
    for row in df.to_dict("records"):
        run_dir = tmp_path / "asha" / "train" / f"train-{row['trial_id']}"
        left = sorted(p for p in run_dir.glob("checkpoint_*") if p.is_dir())
        if pd.isna(row["checkpoint_path"]):
            assert left == [], (row["status"], left)
        else:
            assert [str(p) for p in left] == [row["checkpoint_path"]]
            state = torch.load(left[0] / "state.pt", weights_only=True)
            assert state["state"]["phase"] == "done" and "optimizer" not in state

    # Tune sees the score, the budget and done, nothing per language, and keeps no
    # statistics of its own counters (search.sweep.TUNE_COUNTERS): 8.2 KB a trial on the
    # demo sweep, ~12.5 KB with those statistics, 55 KB when every metric went to Tune
    tune_state = max((tmp_path / "asha" / "tune").glob("experiment_state-*.json"))
    per_trial = tune_state.stat().st_size / len(df)
    assert per_trial <= 10_000, f"Tune's experiment state holds {per_trial:.0f} bytes a trial"
    trials = json.loads(tune_state.read_text())["trial_data"]
    kept = {key for _, runtime in trials for key in json.loads(runtime)["metric_analysis"]}
    assert kept <= {SCORE_KEY, BUDGET_KEY, DONE_KEY}, kept

    s = load_sweep(plan.path)
    top = best(s, k=3)
    assert top["objective"].iloc[0] == finished["objective"].max()
    assert set(top["status"]) == {"finished"}
    front = pareto(s).to_dict("records")
    rows = finished.to_dict("records")
    assert front and not any(_dominated(r, rows) for r in front)
    langs = s.languages  # from the trials' details files: Tune never saw them
    assert set(langs["language"]) == {"en", "de", "fr", "sw"}
    # the out-of-domain set is stored per language beside the target's, out of the objective
    ood = langs[langs["task"] == "demo-sentiment-ood"]
    assert set(finished["trial_id"]) <= set(ood["trial_id"])  # every finished trial scored it
    assert {"accuracy", "ece", "ece_ts"} <= set(ood["metric"])
    shift = domain_shift(s).set_index("set")
    assert list(shift.index) == ["demo-sentiment", "demo-sentiment-ood"]
    assert shift.loc["demo-sentiment", "accuracy_shift"] == 0.0
    assert shift.loc["demo-sentiment-ood", "trials"] == len(finished)
    assert list(finished["objective"]) == pytest.approx(
        list(finished["zs_accuracy"] - finished["zs_ece"]))  # without the out-of-domain set
    langs = langs[langs["task"] == "demo-sentiment"]
    assert set(langs["trial_id"]) == set(df["trial_id"])
    # each finished trial's languages carry their reliability bins, which give back the ECE
    for (tid, lang), part in langs[langs["trial_id"].isin(finished["trial_id"])].groupby(
            ["trial_id", "language"]):
        values = dict(zip(part["metric"], part["value"]))
        n = sum(v for k, v in values.items() if k.startswith("bin") and k.endswith("_count"))
        assert assert_reliability_matches(values, ece=values["ece"], n=n)
        assert assert_reliability_matches(values, ece=values["ece_ts"], n=n, suffix="_ts")
    diagrams = reliability(s)  # the best trial's, as the report will draw them
    assert set(diagrams["language"]) == {"en", "de", "fr", "sw"}
    assert set(diagrams["scaling"]) == {"raw", "ts"} and (diagrams["count"] > 0).all()
    assert len(s.history) >= len(df)  # every trial reported at least its first rung
    # the objective's terms at every rung, from that rung's details file (Tune never saw them)
    assert s.history[["zs_accuracy", "zs_ece"]].notna().all().all(), s.history

    # its report, opened in a real browser: every section drawn, the domain shift shown
    seen = assert_report_renders(plan.path, tmp_path / "report", artifact="report-asha-sweep.png",
                                 figures=_figures(finished))
    assert "In domain vs out of domain" in seen.sections["calibration"]
    assert "demo-sentiment-ood" in seen.sections["calibration"]


def test_multi_objective_sweep_returns_a_non_dominated_set(ray_local, tmp_path):
    sweep = SweepConfig(trials=4, concurrency=2, seed=1, mode="multi", startup_trials=2,
                        asha_grace=0, space=SPACE)
    # its second objective: ECE after temperature scaling (objective_ece: scaled)
    plan = SweepPlan(storage=str(tmp_path), name="multi",
                     base=dataclasses.replace(BASE, objective_ece="scaled"), sweep=sweep)
    outcome = run_sweep(plan)
    assert len(outcome.study.directions) == 2
    assert all(len(t.values) == 2 for t in outcome.study.trials)
    s = load_sweep(plan.path)
    finished = s.trials[s.trials["status"] == "finished"].to_dict("records")
    assert len(finished) == 4
    values = sorted(tuple(t.values) for t in outcome.study.trials)
    assert values == sorted(zip((r["zs_accuracy"] for r in finished),
                                (r["zs_ece_ts"] for r in finished)))
    assert all(r["objective"] == pytest.approx(r["zs_accuracy"] - r["zs_ece_ts"])
               for r in finished)
    front = pareto(s).to_dict("records")
    ids = {r["trial_id"] for r in front}
    assert front and not any(_dominated(r, finished) for r in front)
    for r in finished:  # everything left out is dominated by the front
        assert r["trial_id"] in ids or _dominated(r, front)
    assert_exported_like_the_live_study(plan.path, outcome.study, tmp_path)
    assert_report_renders(plan.path, tmp_path / "report", artifact="report-multi-objective.png",
                          figures=_figures(pd.DataFrame(finished)),
                          missing=("a multi-objective sweep has no single score to improve",))


PRESET = """
trial:
  intermediate_tasks: [demo-polarity]
  intermediate_steps: 10
  target_epochs: 1
  batch_size: 16
  max_length: 48
  max_train_examples: 64
  max_eval_examples: 48
  eval_every: 0
search:
  trials: 2
  concurrency: 1
  asha_grace: 0
  space:
    tasks: [demo-polarity]
    learning_rate: [2.0e-3, 2.0e-3]
    warmup_ratio: [0.1, 0.1]
    intermediate_steps: [10, 10, 10]
    target_epochs: [1]
    batch_size: [16]
"""


def test_cli_run_trains_an_identical_config_once(embedded_cache, tmp_path):
    preset = tmp_path / "one-point.yaml"
    preset.write_text(PRESET)
    proc = subprocess.run(
        [sys.executable, "-m", "search.cli", "run", str(preset), "--storage", str(tmp_path / "runs"),
         "--name", "dedup"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "best configurations of" in proc.stdout
    df = load_sweep(str(tmp_path / "runs" / "dedup")).trials
    assert sorted(df["status"]) == ["duplicate", "finished"]
    first = df[df["status"] == "finished"].iloc[0]
    dup = df[df["status"] == "duplicate"].iloc[0]
    assert dup["duplicate_of"] == first["trial_id"] and dup["config_hash"] == first["config_hash"]
    assert dup["objective"] == first["objective"]
    train_runs = list((tmp_path / "runs" / "dedup" / "train").iterdir())
    assert len(train_runs) == 1  # trained once
    # the final table names the finished trial
    assert first["trial_id"] in proc.stdout


def test_failing_trials_are_recorded_with_their_error_and_the_sweep_goes_on(ray_local, tmp_path):
    # ccg reads licensed local files that are not here (its registry path, no
    # XSTILTS_FILES_CCG): trials that include it fail for good (a missing file is permanent;
    # an unreachable hub would be transient, retried with backoff, then by Tune)
    space = SpaceSpec(tasks=("demo-polarity", "ccg"), learning_rate=(2e-3, 2e-3),
                      intermediate_steps=(10, 10, 10), batch_size=(16,), target_epochs=(1.0,),
                      warmup_ratio=(0.1, 0.1))
    # seed 0 draws ccg, polarity, ccg, polarity+ccg: three failures and one success
    sweep = SweepConfig(trials=4, concurrency=2, seed=0, startup_trials=4, asha_grace=0,
                        sampler="random", space=space)
    plan = SweepPlan(storage=str(tmp_path), name="faults", base=BASE, sweep=sweep)
    run_sweep(plan)
    df = load_sweep(plan.path).trials
    assert len(df) == 4
    failed = df[df["config/intermediate_tasks"].apply(lambda t: "ccg" in list(t))]
    ok = df[df["config/intermediate_tasks"].apply(lambda t: "ccg" not in list(t))]
    assert len(failed) >= 1 and len(ok) >= 1, df[["trial_id", "status", "config/intermediate_tasks"]]
    assert set(failed["status"]) == {"error"}
    assert all("DataUnavailableError: could not load task 'ccg'" in e for e in failed["error"])
    assert set(ok["status"]) <= {"finished", "duplicate"} and ok["objective"].notna().all()
