"""The report's numbers at scale: generated tables of a 10,000-trial XNLI sweep (nine tasks,
15 languages), with and without reliability bins.

Writes a trials table and a languages table through the results writer's functions: per
finished or stopped trial and language the nine metrics a classification target records,
and in the second copy also its reliability bins (15 bins, raw and after temperature
scaling; the non-empty ones of a 3-class softmax, whose confidence is at least 1/3: bins
05-15). Prints each languages file's size and rows, then the time of each
``search.report`` function on the copy with bins (tables read once, as ``load_sweep``
does; median of ``--runs``).

    python benchmarks/report_scale.py [--trials 10000] [--runs 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time

from search.query import load_sweep
from search.report import cost, language_view, progress, reliability, statuses, task_effects
from search.results import CORE_COLUMNS, LANGUAGE_COLUMNS, _table, table_path, write_table

TASKS = ["anli", "ccg", "commonsenseqa", "cosmosqa", "hellaswag", "mnli", "qqp", "squad", "sst2"]
LANGS = "ar bg de el en es fr hi ru sw th tr ur vi zh".split()
METRICS = ["accuracy", "ece", "mce", "brier", "nll", "ece_ts", "mce_ts", "brier_ts", "nll_ts"]


def generate(trials: int, seed: int = 0):
    rng = random.Random(seed)
    rows, metric_rows, bin_rows = [], [], []
    for i in range(trials):
        tasks = [t for t in TASKS if rng.random() < 0.3] or ["mnli"]
        status = rng.choices(["finished", "stopped", "error"], weights=[40, 55, 5])[0]
        acc = 0.6 + 0.01 * len(tasks) + rng.gauss(0, 0.02)
        tid = f"t{i:06d}"
        rows.append({"sweep": "s", "trial_id": tid, "config_hash": f"h{i}", "status": status,
                     "objective": acc - 0.05, "zs_accuracy": acc, "zs_ece": 0.05,
                     "wall_seconds": rng.uniform(600, 7200), "finished_at": float(i),
                     "error": "Traceback\nRuntimeError: CUDA out of memory"
                     if status == "error" else None,
                     "config/intermediate_tasks": tasks, "config/model_size": "base"})
        if status == "error":
            continue
        for lang in LANGS:
            for m in METRICS:
                metric_rows.append({"trial_id": tid, "task": "xnli", "language": lang,
                                    "metric": m, "value": rng.random()})
            for ts in ("", "_ts"):
                for b in range(5, 16):
                    for what, value in (("count", float(rng.randint(1, 400))),
                                        ("confidence", (b - 0.5) / 15), ("accuracy", rng.random())):
                        bin_rows.append({"trial_id": tid, "task": "xnli", "language": lang,
                                         "metric": f"bin{b:02d}_{what}{ts}", "value": value})
    return rows, metric_rows, bin_rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--dir", default=None)
    args = p.parse_args()
    root = args.dir or tempfile.mkdtemp(prefix="xstilts-report-")
    rows, metric_rows, bin_rows = generate(args.trials)
    paths = {}
    for name, langs in (("metrics only", metric_rows), ("with bins", metric_rows + bin_rows)):
        path = paths[name] = os.path.join(root, name.replace(" ", "-"))
        write_table(_table(rows, CORE_COLUMNS), path, "trials")
        write_table(_table(langs, LANGUAGE_COLUMNS), path, "languages")
        size = os.path.getsize(table_path(path, "languages"))
        print(f"languages.parquet, {name}: {len(langs):,} rows, {size / 2**20:.1f} MiB "
              f"({size / args.trials / 1024:.2f} KiB per trial)")
    timings: dict[str, list[float]] = {}
    for _ in range(args.runs):
        t0 = time.perf_counter()
        sweep = load_sweep(paths["with bins"])
        sweep.trials, sweep.languages  # noqa: B018 - read both tables, as the report will
        timings.setdefault("read trials + languages", []).append(time.perf_counter() - t0)
        for label, f in (("task_effects", lambda: task_effects(sweep)),
                         ("task_effects(per_language)", lambda: task_effects(sweep,
                                                                             per_language=True)),
                         ("progress", lambda: progress(sweep)),
                         ("statuses", lambda: statuses(sweep)), ("cost", lambda: cost(sweep)),
                         ("language_view", lambda: language_view(sweep)),
                         ("reliability (best trial)", lambda: reliability(sweep))):
            t0 = time.perf_counter()
            f()
            timings.setdefault(label, []).append(time.perf_counter() - t0)
    print(f"\n{args.trials:,} trials, {len(LANGS)} languages; median of {args.runs} runs:")
    for label, ts in timings.items():
        print(f"  {label:<28} {statistics.median(ts):6.2f} s")
    print(f"  {'all of it':<28} {sum(statistics.median(ts) for ts in timings.values()):6.2f} s")
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
