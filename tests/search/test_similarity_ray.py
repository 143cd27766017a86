"""``xstilts similarity`` on the demo (real model, Ray tasks, a progress bar, Parquet any
reader opens) and a surrogate sweep whose priors come from the estimates it computes first."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from search.priors import prior_points
from search.similarity import read_similarity, task_estimates
from search.sweep import SweepPlan, run_sweep
from spaces.presets import load_preset
from spaces.space import suggested_config

NAME = "sim"


def _xstilts(*args, cwd):
    return subprocess.run([sys.executable, "-m", "search.cli", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd, env=dict(os.environ))


@pytest.mark.ray
def test_similarity_command_writes_estimates_beside_the_sweep(no_ray_here, tmp_path):
    storage = tmp_path / "runs"
    args = ["similarity", "demo", "--storage", str(storage), "--name", NAME,
            "--set", "search.similarity_steps=40", "--set", "search.similarity_examples=160"]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = _xstilts(*args, cwd=root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "similarity: 100%" in proc.stderr  # the progress bar reached its end
    table = pq.read_table(storage / NAME / "similarity.parquet")  # pyarrow alone reads it
    rows = table.to_pylist()
    space = load_preset("demo").sweep_config().space
    assert sorted(r["intermediate"] for r in rows) == sorted(space.tasks)
    assert {(r["target"], r["method"], r["steps"], r["examples"]) for r in rows} == {
        ("demo-sentiment", "logme", 40, 160)}
    by_task = {r["intermediate"]: r["estimate"] for r in rows}
    assert by_task["demo-polarity"] > by_task["demo-topic"]
    assert "demo-polarity" in proc.stdout and str(storage / NAME / "similarity.parquet") in proc.stdout

    # a second run keeps the first one's file and says so; a run of the sweep may follow
    again = _xstilts(*args, cwd=root)
    assert again.returncode == 2 and "already exists and is kept" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.ray
def test_a_sweep_with_priors_runs_the_most_promising_tasks_first(ray_local, tmp_path):
    preset = load_preset("demo")
    sweep = preset.sweep_config(trials=8, concurrency=2, trainable="surrogate",
                                surrogate_seconds=0.2, priors="similarity",
                                similarity_noise=0.0, asha_grace=0)
    plan = SweepPlan(storage=str(tmp_path), name="primed", base=preset.trial_config(),
                     sweep=sweep)
    outcome = run_sweep(plan)

    frame = read_similarity(plan.path)  # computed before the first trial, kept beside it
    assert frame is not None and set(frame["method"]) == {"surrogate"}
    expected = prior_points(sweep, task_estimates(frame, plan.base.target))
    # noise-free surrogate estimates: its task gains, demo-polarity first, demo-topic last
    assert [sorted(k for k, on in p.items() if on) for p in expected][:2] == [
        ["task/demo-polarity"], ["task/demo-match"]]
    trials = sorted(outcome.study.trials, key=lambda t: t.number)
    assert len(trials) == 8
    for trial, point in zip(trials, expected):
        assert trial.system_attrs["fixed_params"] == point
        cfg = suggested_config(plan.base, trial.params, sweep.space)
        assert sorted(cfg.intermediate_tasks) == sorted(
            k.removeprefix("task/") for k, on in point.items() if on)
    assert all("fixed_params" not in t.system_attrs for t in trials[len(expected):])
