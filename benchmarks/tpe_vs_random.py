"""Search efficiency: Optuna TPE (as xstilts configures it) vs random search.

Both samplers search the demo space through the same define-by-run function
(`spaces.space.define_space`) and score each point with the surrogate trial
(`trainables.surrogate`), whose optimum is known. For each seed, count the
trials until the best score so far is within ``--margin`` of the optimum;
report the median over seeds and the ratio TPE / random.

    python benchmarks/tpe_vs_random.py [--seeds 10] [--margin 0.01] [--budget 400]
"""

from __future__ import annotations

import argparse
import statistics
import time

import optuna

from search.searcher import make_searcher
from spaces.presets import load_preset
from spaces.space import define_space, suggested_config
from trainables.surrogate import surrogate_metrics, surrogate_optimum


def trials_to_reach(sampler_name: str, seed: int, margin: float, budget: int) -> int:
    preset = load_preset("demo")
    sweep = preset.sweep_config(seed=seed, sampler=sampler_name)
    base = preset.trial_config()
    # the sampler exactly as a sweep builds it
    sampler = make_searcher(sweep)._sampler
    study = optuna.create_study(direction="maximize", sampler=sampler)
    return trials_until(study, sweep, base, margin, budget)


def trials_until(study: optuna.Study, sweep, base, margin: float, budget: int) -> int:
    """Ask ``study`` for points of ``sweep.space`` and tell it their surrogate scores until
    one is within ``margin`` of the optimum: that trial's number (``budget + 1``: never)."""
    target = surrogate_optimum(sweep.space, base.objective_weight) - margin
    for n in range(1, budget + 1):
        trial = study.ask()
        define_space(trial, sweep.space)
        value = surrogate_metrics(suggested_config(base, trial.params, sweep.space))["score"]
        study.tell(trial, value)
        if value >= target:
            return n
    return budget + 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--margin", type=float, default=0.01)
    p.add_argument("--budget", type=int, default=400)
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    t0 = time.perf_counter()
    medians = {}
    for name in ("tpe", "random"):
        counts = [trials_to_reach(name, s, args.margin, args.budget) for s in range(args.seeds)]
        medians[name] = statistics.median(counts)
        print(f"{name:<7} trials to within {args.margin} of the optimum, per seed: {counts}; "
              f"median {medians[name]}", flush=True)
    print(f"ratio TPE / random (medians): {medians['tpe'] / medians['random']:.2f}   "
          f"({args.seeds} seeds, budget {args.budget}, {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
