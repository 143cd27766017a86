"""The one writer and one reader of a sweep's results (Parquet).

Layout under ``STORAGE/NAME/results/``:

- ``trials.parquet``: one row per trial — ``sweep``, ``trial_id``,
  ``config_hash``, ``status`` (finished | stopped | error | duplicate),
  ``error``, ``duplicate_of``, ``objective``, ``zs_accuracy``, ``zs_ece``,
  ``zs_ece_ts``, ``target_step``, ``wall_seconds``, ``checkpoint_path``,
  ``finished_at``, ``versions`` (JSON), and the full trial config as
  ``config/<key>`` columns (mappings as ``config/<key>/<name>``);
- ``languages.parquet``: long — ``trial_id``, ``task``, ``language``,
  ``metric``, ``value``;
- ``history.parquet``: every report Tune saw — ``trial_id``, ``target_step``,
  ``objective``, ``zs_accuracy``, ``zs_ece``, ``time_seconds``;
- ``parts/``: rows recorded since a table was last compacted (``search.tables``
  keeps the files: base + parts, compaction, reads without torn files).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from importlib import metadata as importlib_metadata
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.compute as pc
from ray import tune

from search.tables import (  # noqa: F401 - search.results is the results API
    KEYS, MAX_PARTS, SCHEMA_KEY, SCHEMA_VERSION, SEQ_KEY, TABLES, PartStore, ResultsError, TableFiles,
    _table, exists, filesystem, list_parts, parts_dir, read_table, read_text, results_dir,
    table_path, write_atomic, write_part, write_table)
from spaces.config import TrialConfig
from spaces.space import SpaceSpec, trial_config
from spaces.tasks import get_task

log = logging.getLogger("xstilts.results")

CORE_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("sweep", pa.string()), ("trial_id", pa.string()), ("config_hash", pa.string()),
    ("status", pa.string()), ("error", pa.string()), ("duplicate_of", pa.string()),
    ("objective", pa.float64()), ("zs_accuracy", pa.float64()), ("zs_ece", pa.float64()),
    ("zs_ece_ts", pa.float64()), ("target_step", pa.int64()), ("wall_seconds", pa.float64()),
    ("checkpoint_path", pa.string()), ("finished_at", pa.float64()), ("versions", pa.string()),
)
LANGUAGE_COLUMNS = (("trial_id", pa.string()), ("task", pa.string()), ("language", pa.string()),
                    ("metric", pa.string()), ("value", pa.float64()))
HISTORY_COLUMNS = (("trial_id", pa.string()), ("target_step", pa.int64()),
                   ("objective", pa.float64()), ("zs_accuracy", pa.float64()),
                   ("zs_ece", pa.float64()), ("time_seconds", pa.float64()))


# -- configs as columns ---------------------------------------------------------------------
def config_columns(config: TrialConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.to_dict().items():
        if isinstance(value, Mapping):
            out.update({f"config/{key}/{k}": float(v) for k, v in value.items()})
        else:
            out[f"config/{key}"] = value
    return out


def config_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The trial config dict of a ``trials`` row (the inverse of ``config_columns``)."""
    out: dict[str, Any] = {}
    for col, value in row.items():
        if not col.startswith("config/"):
            continue
        parts = col.split("/", 2)
        if len(parts) == 3:
            if value is not None and value == value:  # skip null / NaN of absent keys
                out.setdefault(parts[1], {})[parts[2]] = value
        else:
            out[parts[1]] = list(value) if hasattr(value, "__len__") and not isinstance(value, str) else value
    out.setdefault("weights", {})
    return out


@functools.cache  # reading package metadata costs ~70 ms, and every trial's row has it
def versions() -> str:
    names = ("xstilts", "ray", "optuna", "torch", "transformers", "datasets", "pyarrow")
    found = {}
    for n in names:
        try:
            found[n] = importlib_metadata.version(n)
        except importlib_metadata.PackageNotFoundError:
            found[n] = None
    return json.dumps(found, sort_keys=True)


# -- looking up a config or a trial -------------------------------------------------------
METRIC_COLUMNS = {"score": "objective", "zs_accuracy": "zs_accuracy", "zs_ece": "zs_ece",
                  "zs_ece_ts": "zs_ece_ts", "target_step": "target_step"}
_LOOKUP = ["trial_id", "config_hash", "status", "error", *METRIC_COLUMNS.values()]


def reported_metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a trial recorded in ``row`` reported to Tune, so it can be reported again."""
    out = {key: row[col] for key, col in METRIC_COLUMNS.items()}
    return {**out, "finished": row["status"] == "finished", "trial_id": row["trial_id"]}


def lookup(sweep_path: str, trial_id: str, config_hash: str
           ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """What the sweep already holds for a trial about to run, from one read of ``trials``:
    the trial's own row, if recorded, and the reported metrics of a finished trial with the
    same config hash, if any."""
    table = read_table(sweep_path, "trials", columns=_LOOKUP)
    if table is None:
        return None, None
    table = table.select(_LOOKUP)
    own = table.filter(pc.equal(table["trial_id"], trial_id)).to_pylist()
    same = table.filter(pc.and_(pc.equal(table["config_hash"], config_hash),
                                pc.equal(table["status"], "finished"))).to_pylist()
    return (own[0] if own else None), (reported_metrics(same[0]) if same else None)


FAILURE_FILE = "xstilts-failed.txt"


def write_failure(run_dir: str, cause: str) -> None:
    """Mark a Train run as failed for good, so a retry reports the cause without training."""
    write_atomic(f"{run_dir}/{FAILURE_FILE}", cause.encode())


def read_failure(run_dir: str) -> str | None:
    return read_text(f"{run_dir}/{FAILURE_FILE}")


# -- the writer -------------------------------------------------------------------------------
class ResultsWriter(tune.Callback):
    """Tune callback that records each trial as it ends: its rows, as parts.

    The parts are written before the callback returns, so before Tune's next experiment
    snapshot can call the trial ended: a row held back to batch writes could be lost to a
    kill -9 while Tune's state says the trial is done, and a resumed sweep would never
    replay it. Writing is O(rows of the trial), not O(rows of the sweep).
    """

    def __init__(self, sweep_path: str, *, sweep: str, base: TrialConfig, spec: SpaceSpec,
                 max_parts: int = MAX_PARTS):
        self.sweep_path, self.sweep, self.base, self.spec = sweep_path, sweep, base, spec
        self.max_parts = max_parts
        self._reset()

    def _reset(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.history_keys: set[tuple[str, Any]] = set()
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.store: PartStore | None = None

    def __getstate__(self) -> dict[str, Any]:
        # pickled into Tune's experiment state: the tables are on storage, not in the pickle
        return {k: self.__dict__[k] for k in ("sweep_path", "sweep", "base", "spec", "max_parts")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"max_parts": MAX_PARTS, **state})
        self._reset()

    def setup(self, **info) -> None:
        """Start from what storage holds: a resumed sweep keeps every recorded trial. The
        parts an earlier driver left are folded into the tables first."""
        self._reset()
        self.store = PartStore(self.sweep_path, max_parts=self.max_parts)
        self.store.fold_all()
        trials = read_table(self.sweep_path, "trials")
        if trials is not None:
            self.rows = {r["trial_id"]: r for r in trials.to_pylist()}
        history = read_table(self.sweep_path, "history", columns=KEYS["history"])
        if history is not None:
            self.history_keys = set(zip(*(history[k].to_pylist() for k in KEYS["history"])))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "score" not in result:
            return
        self.pending.setdefault(trial.trial_id, []).append({
            "trial_id": trial.trial_id, "target_step": result.get("target_step"),
            "objective": result.get("score"), "zs_accuracy": result.get("zs_accuracy"),
            "zs_ece": result.get("zs_ece"), "time_seconds": result.get("time_total_s")})

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._record(trial, error=None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._record(trial, error=_error_text(trial))

    def on_experiment_end(self, trials, **info):
        """Fold every part into the tables: a finished sweep's three files are complete."""
        if self.store is None:
            return
        self.store.fold_all()
        empty = {"languages": LANGUAGE_COLUMNS, "history": HISTORY_COLUMNS}
        for name, columns in empty.items():
            if self.rows and not exists(table_path(self.sweep_path, name)):
                write_table(_table([], columns), self.sweep_path, name)

    def _record(self, trial, error: str | None) -> None:
        result = dict(trial.last_result or {})
        if trial.trial_id in self.rows and (result.get("replayed") or error):
            # recorded by the driver before a restart: the row and its details stand
            self.pending.pop(trial.trial_id, None)
            return
        config = trial_config(self.base, trial.config, self.spec)
        if error:
            status = "error"
        elif result.get("duplicate_of"):
            status = "duplicate"
        elif result.get("finished"):
            status = "finished"
        else:
            status = "stopped"
        row = {
            "sweep": self.sweep, "trial_id": trial.trial_id, "config_hash": config.config_hash(),
            "status": status, "error": error, "duplicate_of": result.get("duplicate_of") or None,
            "objective": result.get("score"), "zs_accuracy": result.get("zs_accuracy"),
            "zs_ece": result.get("zs_ece"), "zs_ece_ts": result.get("zs_ece_ts"),
            "target_step": result.get("target_step"), "wall_seconds": result.get("time_total_s"),
            "checkpoint_path": _as_uri(result.get("checkpoint_path"), self.sweep_path),
            "finished_at": time.time(),
            "versions": versions(), **config_columns(config),
        }
        self.rows[trial.trial_id] = row
        langs = set(get_task(config.target).languages)
        languages = [
            {"trial_id": trial.trial_id, "task": config.target, "language": k.split("/")[0],
             "metric": k.split("/")[1], "value": float(v)}
            for k, v in result.items()
            if k.split("/")[0] in langs and k.count("/") == 1 and isinstance(v, (int, float))]
        history = []
        for h in self.pending.pop(trial.trial_id, []):
            if (h["trial_id"], h["target_step"]) not in self.history_keys:
                self.history_keys.add((h["trial_id"], h["target_step"]))
                history.append(h)
        if self.store is None:
            self.store = PartStore(self.sweep_path, max_parts=self.max_parts)
        # history and languages first: a row in trials promises its details exist
        self.store.append({"history": _table(history, HISTORY_COLUMNS),
                           "languages": _table(languages, LANGUAGE_COLUMNS),
                           "trials": _table([row], CORE_COLUMNS)})
        score = f"{row['objective']:.4f}" if row["objective"] is not None else "-"
        log.info("trial %s %s: score %s, tasks %s", trial.trial_id, status, score,
                 "+".join(config.intermediate_tasks))


def _as_uri(path: str | None, sweep_path: str) -> str | None:
    """A checkpoint path as Ray reports it (``bucket/key`` on S3), as a URI like the sweep's."""
    if path and "://" in sweep_path and "://" not in path:
        return f"{sweep_path.split('://', 1)[0]}://{path}"
    return path


def _error_text(trial) -> str:
    from search.trainable import root_cause

    try:
        err = trial.get_error()
    except Exception:  # noqa: BLE001 - an unreadable error must not lose the row
        err = None
    if err is not None:
        return root_cause(err)
    path = getattr(trial, "error_file", None)
    if path:
        try:
            with open(path) as f:
                return root_cause(Exception(f.read()))
        except OSError:
            pass
    return "trial failed (no error text recorded)"
