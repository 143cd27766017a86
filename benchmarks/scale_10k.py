"""Bookkeeping at scale: N surrogate trials of ~1 s each through the real sweep
(Ray Tune + the Optuna searcher + the results writer), against the ideal time.

ideal = trials × trial seconds / concurrency; ratio = wall / ideal (Ray's own
bar for 10k one-second trials, one result each, is 1.28×: Tune's release test
``bookkeeping_overhead``; ours 1.15×). ASHA is off so that every trial lasts its
full length. Defaults: one report per trial, as Ray's test, and 8 at a time: on
2 cores, Ray keeps about 7 trial actors alive at 16 at a time (each new trial then
starts a new process), so 16 measured 4.3× where 8 measured 1.3× (400 trials). Prints where the driver's time went: Ray start,
the searcher's suggestions, results writing (measured by wrapping those calls
in this script), and the rest (Tune's own loop: scheduling, actors, results,
experiment snapshots).

    python benchmarks/scale_10k.py [--trials 10000] [--concurrency 8] [--seconds 1.0]
                                   [--sampler random|tpe] [--reports 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict

TIMERS: dict[str, float] = defaultdict(float)
COUNTS: dict[str, int] = defaultdict(int)


def _timed(cls, name: str, label: str) -> None:
    inner = getattr(cls, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            TIMERS[label] += time.perf_counter() - t0
            COUNTS[label] += 1

    setattr(cls, name, wrapper)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--reports", type=int, default=1)
    p.add_argument("--sampler", choices=("random", "tpe"), default="random")
    p.add_argument("--storage", default=None)
    args = p.parse_args()

    from search.local_ray import ensure_ray
    from search.results import ResultsWriter
    from search.searcher import PruningOptunaSearch
    from search.sweep import SweepPlan, run_sweep
    from spaces.presets import load_preset

    _timed(PruningOptunaSearch, "suggest", "searcher: suggest")
    _timed(PruningOptunaSearch, "on_trial_complete", "searcher: tell")
    for hook in ("on_trial_result", "on_trial_complete", "on_experiment_end"):
        if hasattr(ResultsWriter, hook):
            _timed(ResultsWriter, hook, "results writer")

    preset = load_preset("demo")
    sweep = preset.sweep_config(trials=args.trials, concurrency=args.concurrency,
                                sampler=args.sampler, asha_grace=0, trainable="surrogate",
                                surrogate_seconds=args.seconds, surrogate_reports=args.reports)
    storage = args.storage or tempfile.mkdtemp(prefix="xstilts-10k-")
    plan = SweepPlan(storage=storage, name="scale", base=preset.trial_config(), sweep=sweep)
    os.environ.setdefault("XSTILTS_TUNE_VERBOSE", "0")

    t0 = time.perf_counter()
    ensure_ray()
    t_ray = time.perf_counter() - t0
    outcome = run_sweep(plan)
    wall = time.perf_counter() - t0
    done = len(outcome.results)
    ideal = args.trials * args.seconds / args.concurrency
    print(f"\n{done} surrogate trials of {args.seconds} s ({args.reports} reports each), "
          f"concurrency {args.concurrency}, sampler {args.sampler}, {os.cpu_count()} CPUs")
    print(f"wall {wall:.1f} s, ideal {ideal:.1f} s: ratio {wall / ideal:.3f}× "
          f"({(wall - t_ray) / ideal:.3f}× without Ray's start-up)")
    print("where the driver's time went:")
    print(f"  {'ray start':<22} {t_ray:8.1f} s")
    accounted = t_ray
    for label in sorted(TIMERS):
        print(f"  {label:<22} {TIMERS[label]:8.1f} s  ({COUNTS[label]} calls, "
              f"{1000 * TIMERS[label] / max(1, COUNTS[label]):.2f} ms each)")
        accounted += TIMERS[label]
    pids = {r.metrics.get("pid") for r in outcome.results}
    print(f"  {'trials (ideal)':<22} {ideal:8.1f} s  ({len(pids)} trial processes for "
          f"{done} trials: Tune reused actors)")
    print(f"  {'rest (Tune loop)':<22} {wall - accounted - ideal:8.1f} s")
    print(f"results in {plan.path}")


if __name__ == "__main__":
    main()
