"""Similarity estimates of a sweep's (intermediate task, target) pairs, before any trial.

``xstilts similarity PRESET`` and sweeps with ``search.priors: similarity`` compute them
here: one Ray task per (task, seed), each holding a trial's GPU share of the model size
(``trainables.similarity.estimate_pair``; a surrogate sweep's come from
``trainables.surrogate.surrogate_similarity``), written to
``STORAGE/NAME/similarity.parquet``: a plain Parquet file, one row per task and seed,
readable with pandas or pyarrow alone (columns: ``trainables.similarity``'s row).
"""

from __future__ import annotations

import io
import sys
from typing import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from search.tables import exists, filesystem, write_atomic
from spaces.config import TrialConfig
from spaces.packing import gpu_share
from spaces.sweep import SweepConfig

FILE = "similarity.parquet"
#: the columns of a row (``trainables.similarity.estimate_pair``)
COLUMNS = ("intermediate", "target", "model_size", "seed", "method", "estimate", "logme",
           "logme_pretrained", "logme_gain", "text_cosine", "steps", "examples", "seconds")


def similarity_path(sweep_path: str) -> str:
    return f"{sweep_path.rstrip('/')}/{FILE}"


def compute_similarity(base: TrialConfig, sweep: SweepConfig, *, seeds: Sequence[int],
                       progress: bool = True) -> pd.DataFrame:
    """The estimates of every task of ``sweep.space`` for ``base.target``, per seed."""
    tasks = list(sweep.space.tasks)
    if sweep.trainable == "surrogate":
        from trainables.surrogate import surrogate_similarity

        rows = [r for seed in seeds for r in surrogate_similarity(
            tasks, base.target, noise=sweep.similarity_noise, seed=seed)]
        return _frame(rows)
    import ray
    from tqdm import tqdm

    from trainables.similarity import estimate_pair

    gpus = gpu_share(base, base.model_size) if base.use_gpu else 0
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=1)(estimate_pair)
    pending = [remote.remote(base.replace(seed=seed), task, steps=sweep.similarity_steps,
                             examples=sweep.similarity_examples)
               for seed in seeds for task in tasks]
    rows = []
    with tqdm(total=len(pending), desc="similarity", unit="pair", disable=not progress,
              file=sys.stderr) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            rows.append(ray.get(done[0]))
            bar.update(1)
    return _frame(rows)


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.sort_values(["seed", "intermediate"], kind="stable").reset_index(drop=True)


def write_similarity(frame: pd.DataFrame, sweep_path: str) -> str:
    """``frame`` as ``STORAGE/NAME/similarity.parquet`` (written whole, then moved into place)."""
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    path = similarity_path(sweep_path)
    write_atomic(path, buffer.getvalue())
    return path


def read_similarity(sweep_path: str) -> pd.DataFrame | None:
    """The sweep's similarity estimates, or None where there are none."""
    path = similarity_path(sweep_path)
    if not exists(path):
        return None
    fs, p = filesystem(path)
    with fs.open_input_file(p) as f:
        return pq.read_table(f).to_pandas()


def task_estimates(frame: pd.DataFrame, target: str) -> pd.Series:
    """Per intermediate task, its estimate for ``target`` averaged over seeds, best first."""
    rows = frame[frame["target"] == target]
    if rows.empty:
        raise ValueError(f"the similarity estimates hold no row for target {target!r} (they "
                         f"are for {', '.join(sorted(set(frame['target'])))}); compute them "
                         "again with `xstilts similarity` for this preset")
    return rows.groupby("intermediate")["estimate"].mean().sort_values(ascending=False,
                                                                       kind="stable")
