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
  ``objective``, ``zs_accuracy``, ``zs_ece``, ``time_seconds``.

Every file carries ``xstilts.schema`` in its metadata and is written to a
temporary name and moved into place, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from importlib import metadata as importlib_metadata
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from ray import tune

from spaces.config import TrialConfig
from spaces.space import SpaceSpec, trial_config
from spaces.tasks import get_task

log = logging.getLogger("xstilts.results")

SCHEMA_VERSION = 1
SCHEMA_KEY = b"xstilts.schema"
TABLES = ("trials", "languages", "history")
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


class ResultsError(ValueError):
    """A results file that cannot be read; the message says which and what to do."""


# -- paths and files ---------------------------------------------------------------------
def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it, for a local path or a URI."""
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def exists(path: str) -> bool:
    """Whether a file or folder exists at a local path or URI."""
    fs, local = filesystem(path)
    return fs.get_file_info(local).type != pafs.FileType.NotFound


def results_dir(sweep_path: str) -> str:
    return f"{sweep_path.rstrip('/')}/results"


def table_path(sweep_path: str, table: str) -> str:
    return f"{results_dir(sweep_path)}/{table}.parquet"


def _write_then_move(path: str, write) -> None:
    """``write(fs, tmp)`` a temporary file in ``path``'s folder, then move it over ``path``:
    readers see the old file or the new one, never half of one."""
    fs, final = filesystem(path)
    fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
    tmp = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
    write(fs, tmp)
    fs.move(tmp, final)


def write_atomic(path: str, data: bytes) -> None:
    """Write a small file (manifest, marker, lock) atomically."""
    def write(fs, tmp: str) -> None:
        with fs.open_output_stream(tmp) as f:
            f.write(data)

    _write_then_move(path, write)


def read_text(path: str) -> str | None:
    """A small file's text, or None where it does not exist."""
    if not exists(path):
        return None
    fs, p = filesystem(path)
    with fs.open_input_stream(p) as f:
        return f.read().decode()


def write_table(table: pa.Table, sweep_path: str, name: str) -> None:
    """Write a results table atomically, with the schema version in its metadata."""
    meta = {**(table.schema.metadata or {}), SCHEMA_KEY: str(SCHEMA_VERSION).encode(),
            b"xstilts.table": name.encode()}
    _write_then_move(table_path(sweep_path, name), lambda fs, tmp: pq.write_table(
        table.replace_schema_metadata(meta), tmp, filesystem=fs))


def read_table(sweep_path: str, name: str) -> pa.Table | None:
    """A results table, or None if the sweep has not written it yet."""
    if not exists(table_path(sweep_path, name)):
        return None
    fs, path = filesystem(table_path(sweep_path, name))
    try:
        # one open file: by path, pyarrow opens it again for the pages, and a writer's
        # rename in between pairs the old footer with the new file (a torn read)
        with fs.open_input_file(path) as f:
            table = pq.read_table(f)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ResultsError(
            f"{table_path(sweep_path, name)} is not a readable Parquet file ({exc}); move it "
            "aside (the sweep's Tune state under the same folder is untouched) and resume") from None
    version = int((table.schema.metadata or {}).get(SCHEMA_KEY, b"0"))
    if version > SCHEMA_VERSION:
        raise ResultsError(
            f"{table_path(sweep_path, name)} was written with results schema {version}, newer "
            f"than this xstilts reads ({SCHEMA_VERSION}); upgrade xstilts to read it")
    return table


def _table(rows: list[dict[str, Any]], core: Iterable[tuple[str, pa.DataType]]) -> pa.Table:
    core = list(core)
    names = [n for n, _ in core]
    extra = sorted({k for r in rows for k in r} - set(names))
    arrays = [pa.array([r.get(n) for r in rows], type=t) for n, t in core]
    arrays += [pa.array([r.get(n) for r in rows]) for n in extra]
    return pa.Table.from_arrays(arrays, names=names + extra)


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


def reported_metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a trial recorded in ``row`` reported to Tune, so it can be reported again."""
    out = {key: row[col] for key, col in METRIC_COLUMNS.items()}
    return {**out, "finished": row["status"] == "finished", "trial_id": row["trial_id"]}


def _rows(sweep_path: str) -> list[dict[str, Any]]:
    table = read_table(sweep_path, "trials")
    if table is None:
        return []
    return table.select(["trial_id", "config_hash", "status", "error",
                         *METRIC_COLUMNS.values()]).to_pylist()


def finished_metrics(sweep_path: str, config_hash: str) -> dict[str, Any] | None:
    """The reported metrics of a finished trial with this config hash, if any."""
    for row in _rows(sweep_path):
        if row["config_hash"] == config_hash and row["status"] == "finished":
            return reported_metrics(row)
    return None


def recorded_trial(sweep_path: str, trial_id: str) -> dict[str, Any] | None:
    """The ``trials`` row of this trial, if the sweep recorded it already."""
    return next((r for r in _rows(sweep_path) if r["trial_id"] == trial_id), None)


FAILURE_FILE = "xstilts-failed.txt"


def write_failure(run_dir: str, cause: str) -> None:
    """Mark a Train run as failed for good, so a retry reports the cause without training."""
    write_atomic(f"{run_dir}/{FAILURE_FILE}", cause.encode())


def read_failure(run_dir: str) -> str | None:
    return read_text(f"{run_dir}/{FAILURE_FILE}")


# -- the writer -------------------------------------------------------------------------------
class ResultsWriter(tune.Callback):
    """Tune callback that records each trial as it ends, rewriting the tables atomically."""

    def __init__(self, sweep_path: str, *, sweep: str, base: TrialConfig, spec: SpaceSpec):
        self.sweep_path, self.sweep, self.base, self.spec = sweep_path, sweep, base, spec
        self._reset()

    def _reset(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.languages: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []
        self.pending: dict[str, list[dict[str, Any]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        # pickled into Tune's experiment state: the tables are on storage, not in the pickle
        return {k: self.__dict__[k] for k in ("sweep_path", "sweep", "base", "spec")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def setup(self, **info) -> None:
        """Start from what the tables hold: a resumed sweep keeps every recorded trial."""
        self._reset()
        for name in TABLES:
            table = read_table(self.sweep_path, name)
            if table is None:
                continue
            if name == "trials":
                self.rows = {r["trial_id"]: r for r in table.to_pylist()}
            else:
                getattr(self, name).extend(table.to_pylist())

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
        self.languages = [r for r in self.languages if r["trial_id"] != trial.trial_id]
        langs = set(get_task(config.target).languages)
        self.languages.extend(
            {"trial_id": trial.trial_id, "task": config.target, "language": k.split("/")[0],
             "metric": k.split("/")[1], "value": float(v)}
            for k, v in result.items()
            if k.split("/")[0] in langs and k.count("/") == 1 and isinstance(v, (int, float)))
        seen = {(h["trial_id"], h["target_step"]) for h in self.history}
        self.history.extend(h for h in self.pending.pop(trial.trial_id, [])
                            if (h["trial_id"], h["target_step"]) not in seen)
        # history and languages first: a row in trials.parquet promises its details exist
        write_table(_table(self.history, HISTORY_COLUMNS), self.sweep_path, "history")
        write_table(_table(self.languages, LANGUAGE_COLUMNS), self.sweep_path, "languages")
        write_table(_table(list(self.rows.values()), CORE_COLUMNS), self.sweep_path, "trials")
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
