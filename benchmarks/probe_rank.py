"""Does the target probe rank configurations like the final score? (issue 16, item 1)

Draws ``--trials`` configurations from the demo preset's space (Optuna's RandomSampler,
``--seed``), runs each real trial to its end (Ray Train, the tiny model, the demo suite)
on the demo sweep's schedule, so it probes the target at every phase-2 rung, and prints
per trial the probe scores and the final score, then Spearman's ρ between the probe at
each phase-2 rung and the final score (over the trials whose phase 2 reaches that rung).

    python benchmarks/probe_rank.py --trials 10 --seed 0
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    import numpy as np

    def ranks(v):
        v = np.asarray(v, dtype=float)
        order = v.argsort(kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for value in np.unique(v):  # ties share their mean rank
            r[v == value] = r[v == value].mean()
        return r

    rx, ry = ranks(xs), ranks(ys)
    return float(np.corrcoef(rx, ry)[0, 1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import optuna
    import ray

    from search.local_ray import ensure_ray
    from search.sweep import MAX_BUDGET
    from spaces.objective import BUDGET_KEY, DONE_KEY, SCORE_KEY
    from spaces.presets import load_preset
    from spaces.space import define_space, suggested_config
    from trainables.trial import run_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    preset = load_preset("demo")
    base, sweep = preset.trial_config(), preset.sweep_config()
    schedule = {"rungs": sweep.rungs(MAX_BUDGET), "two_phase": True}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed))
    ensure_ray()
    rows = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as storage:
        for i in range(args.trials):
            trial = study.ask()
            define_space(trial, sweep.space)
            cfg = suggested_config(base, trial.params, sweep.space)
            result = run_trial(cfg, storage_path=storage, name=f"probe-{i}", schedule=schedule,
                               keep_checkpoints=None)
            reports = [m for _, m in result.best_checkpoints if SCORE_KEY in m]
            probes = {m[BUDGET_KEY]: m[SCORE_KEY] for m in reports if m.get("probe")}
            final = next(m[SCORE_KEY] for m in reports if m.get(DONE_KEY))
            rows.append({"tasks": "+".join(cfg.intermediate_tasks), "mixing": cfg.mixing,
                         "steps": cfg.intermediate_steps, "probes": probes, "final": final})
            print(f"trial {i}: {rows[-1]}", flush=True)
    seconds = time.monotonic() - t0
    ray.shutdown()

    rungs = sorted({b for r in rows for b in r["probes"]})
    print(f"\n{args.trials} demo configurations (RandomSampler seed {args.seed}), schedule "
          f"{schedule['rungs'][:4]}..., {seconds:.0f} s")
    head = f"{'tasks':<44}{'steps':>6}" + "".join(f"{f'probe@{b}':>11}" for b in rungs)
    print(head + f"{'final':>9}")
    for r in rows:
        cells = "".join(f"{r['probes'][b]:>11.4f}" if b in r["probes"] else f"{'-':>11}"
                        for b in rungs)
        print(f"{r['tasks'] + ' (' + r['mixing'] + ')':<44}{r['steps']:>6}{cells}{r['final']:>9.4f}")
    for b in rungs:
        pairs = [(r["probes"][b], r["final"]) for r in rows if b in r["probes"]]
        if len(pairs) >= 3:
            rho = spearman([p for p, _ in pairs], [f for _, f in pairs])
            print(f"Spearman rho(probe at budget {b}, final score) = {rho:+.3f} over {len(pairs)} trials")
    last = [(r["probes"][max(r["probes"])], r["final"]) for r in rows if r["probes"]]
    if len(last) >= 3:
        rho = spearman([p for p, _ in last], [f for _, f in last])
        print(f"Spearman rho(last phase-2 probe, final score) = {rho:+.3f} over {len(last)} trials")
    return 0


if __name__ == "__main__":
    sys.exit(main())
