"""Does the demo sweep find the helpful intermediate task? Real sweeps, several seeds.

Runs the demo preset's sweep (Tune + Optuna TPE + ASHA over real Ray Train
trials) once per seed and reports, per seed: the best configuration's tasks,
and how many finished trials it took until the best-so-far included
demo-polarity for good.

    python benchmarks/sweep_finds_helpful.py [--seeds 0 1 2] [--trials 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from search.local_ray import ensure_ray
from search.query import best, load_sweep
from search.sweep import SweepPlan, run_sweep
from spaces.presets import load_preset

HELPFUL = "demo-polarity"


def trials_until_found(trials) -> int | None:
    done = trials.sort_values("finished_at").reset_index(drop=True)
    best_score, best_has, since = float("-inf"), False, None
    for i, row in done.iterrows():
        if row["status"] == "finished" and row["objective"] > best_score:
            best_score, best_has = row["objective"], HELPFUL in list(row["config/intermediate_tasks"])
            since = (i + 1) if best_has else None
    return since


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--trials", type=int, default=None)
    args = p.parse_args()
    ensure_ray()
    preset = load_preset("demo")
    storage = tempfile.mkdtemp(prefix="xstilts-find-")
    found = 0
    for seed in args.seeds:
        t0 = time.perf_counter()
        changes = {"seed": seed, **({"trials": args.trials} if args.trials else {})}
        plan = SweepPlan(storage=storage, name=f"seed{seed}", base=preset.trial_config(),
                         sweep=preset.sweep_config(**changes))
        run_sweep(plan)
        sweep = load_sweep(plan.path)
        top = best(sweep, k=1).iloc[0]
        tasks = list(top["config/intermediate_tasks"])
        n = trials_until_found(sweep.trials)
        found += HELPFUL in tasks
        print(f"seed {seed}: best {top['trial_id']} score {top['objective']:.4f} tasks {'+'.join(tasks)}; "
              f"best-so-far includes {HELPFUL} from trial {n} of {len(sweep.trials)} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"best configuration includes {HELPFUL} in {found} of {len(args.seeds)} seeds")


if __name__ == "__main__":
    main()
