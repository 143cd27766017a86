"""Do similarity priors save trials? With and without ``search.priors: similarity``.

    python benchmarks/priors.py surrogate [--seeds 10] [--noise 0 0.02 0.05] [--margin 0.01]
    python benchmarks/priors.py demo [--seeds 0 1 2] [--trials 10] [--margin 0.02] [--reuse DIR]

``surrogate``: the paper-base space (nine intermediate tasks) scored by the surrogate
trial (``trainables.surrogate``, optimum known), searched by the sampler exactly as a
sweep builds it (``search.searcher.make_searcher``); with priors, the trials
``search.priors.prior_points`` makes from ``surrogate_similarity`` estimates (true task
gain + N(0, noise): a signal of known quality; its Spearman rho with the true gains is
printed) are enqueued first, as Tune's ``points_to_evaluate`` enqueues them. Per seed:
trials until the best score is within ``--margin`` of the optimum; medians over seeds.

``demo``: real demo sweeps (Ray Tune + Optuna + ASHA over Ray Train trials of the tiny
model) per seed, without and with priors (the similarity estimates computed first, their
time counted): finished trials and trial-seconds until a finished trial is within
``--margin`` of the best objective any run's finished trials reached (ASHA-stopped
trials, whose scores are truncated, count neither way).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import optuna
import pandas as pd

from search.priors import prior_points
from search.searcher import make_searcher
from search.similarity import task_estimates
from spaces.presets import load_preset
from tpe_vs_random import trials_until  # benchmarks/, the script's folder
from trainables.surrogate import TASK_GAIN, surrogate_similarity


def _rho(frame: pd.DataFrame) -> float:
    est = frame.set_index("intermediate")["estimate"]
    true = pd.Series({t: TASK_GAIN.get(t, 0.0) for t in est.index})
    return float(est.rank().corr(true.rank()))


def surrogate_trials(seed: int, noise: float | None, margin: float, budget: int,
                     preset: str = "paper-base") -> tuple[int, float]:
    """Trials until within ``margin`` of the optimum (``budget + 1``: never), and the
    estimate's Spearman rho with the true gains (NaN without priors)."""
    p = load_preset(preset)
    sweep = p.sweep_config(seed=seed)
    base = p.trial_config()
    sampler = make_searcher(sweep)._sampler
    study = optuna.create_study(direction="maximize", sampler=sampler)
    rho = float("nan")
    if noise is not None:
        frame = pd.DataFrame(surrogate_similarity(sweep.space.tasks, base.target, noise=noise,
                                                  seed=seed))
        rho = _rho(frame)
        for point in prior_points(sweep, task_estimates(frame, base.target)):
            study.enqueue_trial(point)
    return trials_until(study, sweep, base, margin, budget), rho


def cmd_surrogate(args) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    t0 = time.perf_counter()
    print(f"surrogate, paper-base space (9 tasks), {args.seeds} seeds, margin {args.margin}, "
          f"budget {args.budget}: trials until the best is within the margin of the optimum")
    runs = {"no priors": None, **{f"priors, noise {n}": n for n in args.noise}}
    medians = {}
    for label, noise in runs.items():
        out = [surrogate_trials(s, noise, args.margin, args.budget) for s in range(args.seeds)]
        counts = [n for n, _ in out]
        medians[label] = statistics.median(counts)
        rho = "" if noise is None else \
            f"; estimate's Spearman rho with the true gains: median {statistics.median(r for _, r in out):.2f}"
        print(f"  {label:<20} per seed {counts}; median {medians[label]}{rho}", flush=True)
    plain = medians["no priors"]
    for label, m in medians.items():
        if label != "no priors":
            print(f"  {label}: {m / plain:.2f}x the trials of no priors")
    print(f"({time.perf_counter() - t0:.0f} s)")


def cmd_demo(args) -> None:
    from search.local_ray import ensure_ray
    from search.query import load_sweep
    from search.similarity import read_similarity
    from search.sweep import SweepPlan, run_sweep

    preset = load_preset("demo")
    storage = args.reuse or tempfile.mkdtemp(prefix="xstilts-priors-")
    if not args.reuse:
        ensure_ray()
    runs = []
    for seed in args.seeds:
        for priors in ("none", "similarity"):
            changes = {"seed": seed, "priors": priors,
                       **({"trials": args.trials} if args.trials else {})}
            plan = SweepPlan(storage=storage, name=f"{priors}-{seed}",
                             base=preset.trial_config(), sweep=preset.sweep_config(**changes))
            t0 = time.perf_counter()
            if not args.reuse:
                run_sweep(plan)
            wall = time.perf_counter() - t0
            trials = load_sweep(plan.path).trials.sort_values("finished_at")
            sim = read_similarity(plan.path)
            runs.append({"seed": seed, "priors": priors, "trials": trials, "wall": wall,
                         "similarity_s": float(sim["seconds"].sum()) if sim is not None else 0.0})
            print(f"seed {seed} priors {priors}: {len(trials)} trials in {wall:.0f} s "
                  f"({plan.path})", flush=True)
    # finished trials only: a trial ASHA stopped reports a truncated score (a probe's)
    # (every trial's seconds count towards the cost, stopped ones too)
    for r in runs:
        every = r["trials"].reset_index(drop=True)
        r["cost"] = every["wall_seconds"].fillna(0).cumsum() + r["similarity_s"]
        r["trials"] = every[every["status"] == "finished"]
    best = max(r["trials"]["objective"].max() for r in runs)
    print(f"\ndemo: best objective over all runs {best:.4f}; margin {args.margin}")
    reached: dict[str, list] = {"none": [], "similarity": []}
    for r in runs:
        t = r["trials"]
        hit = t.index[t["objective"] >= best - args.margin]
        n = int(list(t.index).index(hit[0])) + 1 if len(hit) else None
        s = float(r["cost"].loc[hit[0]]) if len(hit) else None
        reached[r["priors"]].append((n, s))
        top = t.loc[t["objective"].idxmax()]
        print(f"  seed {r['seed']} priors {r['priors']:<10} within margin at trial {n} "
              f"({'-' if s is None else f'{s:.0f}'} trial-s incl. {r['similarity_s']:.0f} s of "
              f"similarity); best {top['objective']:.4f} "
              f"{'+'.join(top['config/intermediate_tasks'])}")
    for priors, hits in reached.items():
        ns = [n for n, _ in hits]
        reached_n = [n for n in ns if n is not None]
        secs = [s for _, s in hits if s is not None]
        print(f"  priors {priors:<10} reached the margin in {len(reached_n)} of {len(ns)} seeds; "
              f"finished trials to it per seed {ns}; median "
              f"{statistics.median(reached_n) if reached_n else '-'}; median trial-seconds "
              f"{statistics.median(secs) if secs else float('nan'):.0f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("surrogate")
    s.add_argument("--seeds", type=int, default=10)
    s.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.02, 0.05])
    s.add_argument("--margin", type=float, default=0.01)
    s.add_argument("--budget", type=int, default=400)
    s.set_defaults(func=cmd_surrogate)
    d = sub.add_parser("demo")
    d.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    d.add_argument("--trials", type=int, default=None)
    d.add_argument("--margin", type=float, default=0.02)
    d.add_argument("--reuse", default=None, metavar="DIR",
                   help="read the sweeps an earlier run left in DIR instead of running them")
    d.set_defaults(func=cmd_demo)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
