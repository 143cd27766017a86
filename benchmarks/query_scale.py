"""Query speed at scale: best-k and the Pareto front over a 1,000,000-trial table.

Writes a trials table with the real schema (the core columns and the demo preset's
``config/<key>`` columns; statuses mixed, some metrics missing) through the results
writer's own functions: a base and a few parts, some of which rewrite base rows.
Then times ``best(path, k=10)`` and ``pareto(path)``, each call reading storage afresh
(xstilts caches nothing; the OS page cache is warm), median of ``--runs``; then the
same while a background thread appends parts and compacts them as a sweep's writer
does, folding into the base every few seconds. For scale: one eager read of the whole
table into pandas, which is what ranking cost before.

    python benchmarks/query_scale.py [--trials 1000000] [--runs 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import tempfile
import threading
import time

import numpy as np
import pyarrow as pa

from search.query import SweepResults, best, pareto
from search.results import (CORE_COLUMNS, HISTORY_COLUMNS, PartStore, _table, config_columns,
                            list_parts, read_table, versions, write_table)
from spaces.presets import load_preset

PARTS, PART_ROWS = 3, 2000


@functools.cache
def _demo():
    preset = load_preset("demo")
    return preset.sweep_config().space, config_columns(preset.trial_config()), versions()


def trials_table(n: int, start: int, rng: np.random.Generator) -> pa.Table:
    """``n`` trial rows as the writer lays them out, built column by column (fast)."""
    space, example, versions_json = _demo()
    ids = np.arange(start, start + n)
    status = rng.choice(["finished", "stopped", "error", "duplicate"], n, p=[.55, .35, .07, .03])
    failed = status == "error"
    acc = np.round(rng.beta(5, 3, n), 4)
    ece = np.round(rng.gamma(2, 0.03, n), 4)
    cols: dict[str, pa.Array] = {
        "sweep": pa.array(np.full(n, "scale")),
        "trial_id": pa.array([f"{i // 100000:08x}_{i:07d}" for i in ids]),
        "config_hash": pa.array([f"{h:016x}" for h in rng.integers(0, 2**62, n)]),
        "status": pa.array(status),
        "error": pa.array(np.where(failed, "RuntimeError: loss is NaN", None)),
        "duplicate_of": pa.array(np.where(status == "duplicate", "00000000_0000001", None)),
        "objective": pa.array(acc - ece, mask=failed | (rng.random(n) < 0.01)),
        "zs_accuracy": pa.array(acc, mask=failed),
        "zs_ece": pa.array(ece, mask=failed | (rng.random(n) < 0.01)),
        "zs_ece_ts": pa.array(ece / 2, mask=failed),
        "budget": pa.array(rng.integers(100, 900, n)),
        "target_step": pa.array(rng.integers(20, 400, n)),
        "wall_seconds": pa.array(rng.uniform(30, 600, n)),
        "checkpoint_path": pa.array([f"/runs/scale/train/train-{i:07d}/checkpoint" for i in ids]),
        "finished_at": pa.array(1.7e9 + ids.astype(float)),
        "versions": pa.array(np.full(n, versions_json)),
    }
    assert list(cols) == [name for name, _ in CORE_COLUMNS]
    tasks = list(space.tasks)
    included = rng.random((n, len(tasks))) < 0.5
    included[~included.any(axis=1), -1] = True
    for key, value in example.items():
        if key == "config/intermediate_tasks":
            cols[key] = pa.array([[t for t, on in zip(tasks, row) if on] for row in included])
        elif key.startswith("config/weights/"):
            continue
        elif key == "config/learning_rate":
            cols[key] = pa.array(rng.uniform(*space.learning_rate, n))
        elif key == "config/warmup_ratio":
            cols[key] = pa.array(rng.uniform(*space.warmup_ratio, n))
        elif key == "config/mixing":
            cols[key] = pa.array(rng.choice(list(space.mixing), n))
        elif isinstance(value, list):
            cols[key] = pa.array([value] * n)
        else:
            cols[key] = pa.array(np.full(n, value))
    for j, t in enumerate(tasks):
        cols[f"config/weights/{t}"] = pa.array(rng.uniform(-3, 3, n), mask=~included[:, j])
    return pa.table(cols)


def build(path: str, n: int) -> PartStore:
    rng = np.random.default_rng(0)
    write_table(trials_table(n - PARTS * PART_ROWS, 0, rng), path, "trials")
    store = PartStore(path)
    for p in range(PARTS):
        fresh = trials_table(PART_ROWS, n - (PARTS - p) * PART_ROWS, rng)
        redone = trials_table(50, rng.integers(0, n - PARTS * PART_ROWS - 50), rng)
        store.append({"trials": pa.concat_tables([fresh, redone], promote_options="permissive")})
    return store


class Writer(threading.Thread):
    """Appends a part of 4 trials (and their history) every 20 ms, far more often than
    trials end, compacting as a sweep's writer does (a merge each time a table has more
    than 32 parts); ``fold``: then fold every part into the base once."""

    def __init__(self, store: PartStore, start_id: int, *, fold: bool = False):
        super().__init__(daemon=True)
        self.store, self.next_id, self.fold = store, start_id, fold
        self.stop, self.parts, self.fold_seconds = threading.Event(), 0, 0.0

    def run(self) -> None:
        rng = np.random.default_rng(1)
        while not self.stop.is_set():
            rows = trials_table(4, self.next_id, rng)
            hist = [{"trial_id": tid, "budget": 20} for tid in rows["trial_id"].to_pylist()]
            self.store.append({"history": _table(hist, HISTORY_COLUMNS), "trials": rows})
            self.next_id, self.parts = self.next_id + 4, self.parts + 1
            if self.fold:
                t0 = time.perf_counter()
                self.store.compact("trials", fold=True)
                self.fold_seconds = time.perf_counter() - t0
                return
            time.sleep(0.02)


def timed(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", help="where to write the sweep (default: a temporary folder)")
    args = ap.parse_args()
    root = args.dir or tempfile.mkdtemp(prefix="xstilts-query-scale-")
    path = f"{root}/sweep"
    try:
        t0 = time.perf_counter()
        store = build(path, args.trials)
        print(f"wrote {args.trials:,} trials ({len(list_parts(path, 'trials'))} parts) "
              f"in {time.perf_counter() - t0:.1f} s")
        rows: list[tuple[str, float, str]] = []
        t_best, top = timed(lambda: best(path, k=10), args.runs)
        t_front, front = timed(lambda: pareto(path), args.runs)
        rows += [("best(path, k=10)", t_best, f"{len(top)} rows"),
                 ("pareto(path)", t_front, f"{len(front)} rows")]

        writer = Writer(store, args.trials)
        writer.start()
        time.sleep(0.5)
        t_best_w, top_w = timed(lambda: best(path, k=10), args.runs)
        t_front_w, front_w = timed(lambda: pareto(path), args.runs)
        writer.stop.set()
        writer.join()
        rows += [("best(path, k=10), writer running", t_best_w, f"{len(top_w)} rows"),
                 ("pareto(path), writer running", t_front_w, f"{len(front_w)} rows")]
        appended = writer.parts

        # one call while the writer folds every part into the 1M-row base (both share the
        # 2 cores; a sweep folds at its end, and when parts reach a quarter of the base)
        folder = Writer(store, writer.next_id, fold=True)
        folder.start()
        t_fold, top_f = timed(lambda: best(path, k=10), 1)
        folder.join()
        rows.append(("best(path, k=10), during a fold", t_fold,
                     f"{len(top_f)} rows; the fold took {folder.fold_seconds:.1f} s"))

        t_eager, _ = timed(lambda: best(SweepResults(path, trials=read_table(path, "trials")
                                              .to_pandas()), k=10), 1)
        rows.append(("eager: whole table to pandas, then best", t_eager, "1 run"))

        print(f"\n{'query':<42} {'median s':>9}  result")
        for name, seconds, note in rows:
            print(f"{name:<42} {seconds:>9.3f}  {note}")
        print(f"\nbackground writer: {appended} parts appended and compacted during the timed "
              f"calls; {args.runs} runs per median; {len(list_parts(path, 'trials'))} trials "
              f"parts at the end")
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
