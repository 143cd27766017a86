"""The report's numbers and page at scale: generated tables of a 10,000-trial XNLI sweep of
the paper-base space (nine tasks, 15 languages), with and without reliability bins.

Each trial's config is a point of the paper-base space drawn at random (``define_space``
answered by a random stand-in for an Optuna trial), and the sweep's manifest is written,
so the report rebuilds the Optuna study as for a real sweep. Per finished or stopped trial
and language: the nine metrics a classification target records, and in the second copy
also its reliability bins (15 bins, raw and after temperature scaling; the non-empty ones
of a 3-class softmax, whose confidence is at least 1/3: bins 05-15). Prints each
languages file's size and rows, the time of each ``search.report`` function on the copy
with bins (tables read once, as ``load_sweep`` does; median of ``--runs``), then the time
of the whole page (``search.page.write_report``: numbers, study, figures, HTML).

    python benchmarks/report_scale.py [--trials 10000] [--runs 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import tempfile
import time

import numpy as np
import pyarrow as pa

from search.query import load_sweep
from search.report import cost, language_view, progress, reliability, statuses, task_effects
from search.page import write_report
from search.results import (CORE_COLUMNS, LANGUAGE_COLUMNS, _table, config_columns, table_path,
                            write_table)
from search.sweep import SweepPlan, write_manifest
from spaces.presets import load_preset
from spaces.space import define_space, suggested_config

LANGS = "ar bg de el en es fr hi ru sw th tr ur vi zh".split()
METRICS = ["accuracy", "ece", "mce", "brier", "nll", "ece_ts", "mce_ts", "brier_ts", "nll_ts"]
BINS = [f"bin{b:02d}_{what}{ts}" for ts in ("", "_ts") for b in range(5, 16)
        for what in ("count", "confidence", "accuracy")]


class _RandomTrial:
    """Answers ``define_space``'s questions at random, as Optuna's RandomSampler would."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.params = rng, {}

    def suggest_categorical(self, name, choices):
        self.params[name] = choices[int(self.rng.integers(len(choices)))]
        return self.params[name]

    def suggest_float(self, name, low, high, *, log=False):
        u = self.rng.uniform(math.log(low), math.log(high)) if log else self.rng.uniform(low, high)
        self.params[name] = float(math.exp(u) if log else u)
        return self.params[name]

    def suggest_int(self, name, low, high, *, step=1):
        self.params[name] = int(low + step * self.rng.integers((high - low) // step + 1))
        return self.params[name]


def generate(path: str, trials: int, *, bins: bool = True, seed: int = 0) -> None:
    """Write a generated sweep of ``trials`` trials at ``path``: manifest, trials table and
    languages table (with reliability bins if ``bins``)."""
    rng = np.random.default_rng(seed)
    preset = load_preset("paper-base")
    base, sweep = preset.trial_config(), preset.sweep_config()
    storage, name = os.path.split(path.rstrip("/"))
    write_manifest(SweepPlan(storage=storage, name=name, base=base, sweep=sweep))
    rows = []
    status = rng.choice(["finished", "stopped", "error"], size=trials, p=[0.40, 0.55, 0.05])
    for i in range(trials):
        point = _RandomTrial(rng)
        define_space(point, sweep.space)
        cfg = suggested_config(base, point.params, sweep.space)
        acc = 0.6 + 0.01 * len(cfg.intermediate_tasks) + rng.normal(0, 0.02)
        rows.append({"sweep": name, "trial_id": f"t{i:06d}", "config_hash": f"h{i}",
                     "status": str(status[i]), "objective": acc - 0.05, "zs_accuracy": acc,
                     "zs_ece": 0.05 + rng.normal(0, 0.01), "zs_ece_ts": 0.03,
                     "wall_seconds": rng.uniform(600, 7200), "finished_at": float(i),
                     "error": "Traceback\nRuntimeError: CUDA out of memory"
                     if status[i] == "error" else None, **config_columns(cfg)})
    write_table(_table(rows, CORE_COLUMNS), path, "trials")
    scored = np.array([r["trial_id"] for r in rows if r["status"] != "error"])
    metrics = METRICS + (BINS if bins else [])
    per_trial = len(LANGS) * len(metrics)
    n = len(scored) * per_trial
    values = rng.random(n)
    if bins:  # counts and mean confidences where the bins are
        names = np.tile(np.repeat(np.array(metrics, dtype=object), 1), len(LANGS))
        conf = np.array([(int(m[3:5]) - 0.5) / 15 if "confidence" in m else math.nan
                         for m in names])
        count = np.array(["count" in m for m in names])
        tiled_conf, tiled_count = np.tile(conf, len(scored)), np.tile(count, len(scored))
        values = np.where(np.isnan(tiled_conf), values, tiled_conf)
        values = np.where(tiled_count, np.floor(values * 400) + 1, values)
    langs = pa.table({
        "trial_id": pa.array(np.repeat(scored, per_trial), pa.string()),
        "task": pa.array(np.full(n, "xnli", dtype=object), pa.string()),
        "language": pa.array(np.tile(np.repeat(np.array(LANGS, dtype=object), len(metrics)),
                                     len(scored)), pa.string()),
        "metric": pa.array(np.tile(np.array(metrics, dtype=object), len(scored) * len(LANGS)),
                           pa.string()),
        "value": pa.array(values, pa.float64())})
    assert langs.column_names == [c for c, _ in LANGUAGE_COLUMNS]
    write_table(langs, path, "languages")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--dir", default=None)
    args = p.parse_args()
    root = args.dir or tempfile.mkdtemp(prefix="xstilts-report-")
    paths = {}
    for label, bins in (("metrics only", False), ("with bins", True)):
        path = paths[label] = os.path.join(root, label.replace(" ", "-"))
        t0 = time.perf_counter()
        generate(path, args.trials, bins=bins)
        size = os.path.getsize(table_path(path, "languages"))
        rows = load_sweep(path).languages.shape[0]
        print(f"languages.parquet, {label}: {rows:,} rows, {size / 2**20:.1f} MiB "
              f"({size / args.trials / 1024:.2f} KiB per trial; generated in "
              f"{time.perf_counter() - t0:.1f} s)")
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
    pages = []
    for run in range(args.runs):
        t0 = time.perf_counter()
        page = write_report(paths["with bins"], os.path.join(root, f"report-{run}"))
        pages.append(time.perf_counter() - t0)
    print(f"\nxstilts report (the whole page: tables read, numbers, study of {args.trials:,} "
          f"trials, figures, HTML): median {statistics.median(pages):.1f} s, runs "
          f"{', '.join(f'{t:.1f}' for t in pages)} s; page {os.path.getsize(page) / 2**20:.1f} MiB")
    if not args.dir:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
