"""``benchmarks/sweep_cost.py rungs``: two-phase's ASHA replayed with other rungs over
stored surrogate sweeps judges each trial as ASHA's rule says (a trial below the
(1 - 1/reduction) quantile of the earlier values at a rung stops there), and the command
reports on a ``surrogate --json`` file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import sweep_cost  # noqa: E402
from spaces.config import TrialConfig  # noqa: E402
from spaces.presets import load_preset  # noqa: E402
from spaces.space import define_space, suggested_config  # noqa: E402
from trainables.surrogate import (surrogate_curve, surrogate_metrics,  # noqa: E402
                                  surrogate_optimum, surrogate_phases)


def _stored_runs(n: int = 40, seed: int = 0) -> list[dict]:
    """Today's and two-phase's sweeps as ``surrogate --json`` keeps them, both run unstopped
    over ``n`` paper-base configs Optuna's random sampler draws."""
    preset = load_preset("paper-base")
    base = preset.trial_config(["use_gpu=false"])
    sweep = preset.sweep_config(["use_gpu=false"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    trials = []
    for _ in range(n):
        ask = study.ask()
        define_space(ask, sweep.space)
        cfg = suggested_config(base, ask.params, sweep.space)
        s2, s3 = surrogate_phases(cfg)
        final = surrogate_metrics(cfg)["score"]
        trials.append({"status": "finished", "score": final, "budget": s2 + s3,
                       "true_score": surrogate_metrics(cfg, noise=0.0)["score"],
                       "s2": s2, "s3": s3, "s2_full": s2, "s3_full": s3, "probes": 0,
                       "evals": 1, "config": cfg.to_dict()})
    common = {"preset": "paper-base", "seed": seed, "wall_s": 0.0,
              "optimum": surrogate_optimum(sweep.space, base.objective_weight)}
    two = {k: v for k, v in sweep.to_dict().items() if k != "space"}
    return [{**common, "scheme": "today", "trials": trials,
             "sweep": {**two, "two_phase": False}},
            {**common, "scheme": "two-phase", "trials": trials, "sweep": two}]


def test_replay_stops_what_asha_would_stop():
    _, two = _stored_runs()
    replayed = sweep_cost.replay_rungs(two, 4000, 3)["trials"]
    seen: dict[int, list[float]] = {}  # rung -> values recorded there so far
    for t, r in zip(two["trials"], replayed):
        cfg = TrialConfig.from_dict(t["config"])
        total, expect = t["s2_full"] + t["s3_full"], t["s2_full"] + t["s3_full"]
        for rung in (4000, 12000, 36000):
            if rung >= total:
                break
            value = surrogate_curve(cfg, rung, two_phase=True)["score"]
            earlier = seen.setdefault(rung, [])
            cut = np.nanpercentile(earlier, 100 * (1 - 1 / 3)) if earlier else None
            earlier.append(value)
            if cut is not None and value < cut:
                expect = rung
                break
        assert r["budget"] == expect and r["s2"] + r["s3"] == expect
        assert r["s2"] == min(expect, t["s2_full"])
        assert r["status"] == ("finished" if expect == total else "stopped")
        if r["status"] == "finished":
            assert r["score"] == surrogate_metrics(cfg)["score"]
    statuses = {r["status"] for r in replayed}
    assert statuses == {"finished", "stopped"}, statuses


def test_rungs_beyond_every_trial_stop_nothing():
    _, two = _stored_runs(n=10)
    replayed = sweep_cost.replay_rungs(two, 10**8, 3)["trials"]
    assert [r["status"] for r in replayed] == ["finished"] * 10
    assert [r["s2"] + r["s3"] for r in replayed] == [t["budget"] for t in two["trials"]]


def test_the_command_reports_each_placement(tmp_path):
    runs = _stored_runs() + [{**r, "seed": 1} for r in _stored_runs(seed=1)]
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(runs))
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/sweep_cost.py"), "rungs",
                          "--from-json", str(path), "--rungs", "4000:3,100000000:3"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()
            if line.startswith("  ") and line.split()[0] in {"as", "4000:3", "100000000:3"}}
    assert set(rows) == {"as", "4000:3", "100000000:3"}, out.stdout
    assert "(the sweep's)" in " ".join(rows["4000:3"])
    # stored unstopped, and rungs past every trial's end: each runs today's steps
    assert rows["as"][-2] == "1.00" and rows["100000000:3"][-2] == "1.00", out.stdout
    assert float(rows["4000:3"][-2]) < 1.0, out.stdout


def test_surrogate_refuses_rungs_that_no_sweep_it_runs_would_use():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/sweep_cost.py"), "surrogate",
                          "--schemes", "today", "--rungs", "2000:3", "--seeds", "0"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "--rungs 2000:3" in out.stderr and "--schemes two-phase" in out.stderr, out.stderr
    assert "seed 0" not in out.stdout  # refused before any sweep ran
