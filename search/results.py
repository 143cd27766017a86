"""The one writer and one reader of a sweep's results (Parquet).

Layout under ``STORAGE/NAME/results/``:

- ``trials.parquet``: one row per trial — ``sweep``, ``trial_id``,
  ``config_hash``, ``status`` (finished | stopped | error | duplicate),
  ``error``, ``duplicate_of``, ``objective``, ``zs_accuracy``, ``zs_ece``,
  ``zs_ece_ts``, ``budget``, ``target_step``, ``wall_seconds``, ``checkpoint_path``,
  ``finished_at``, ``versions`` (JSON), and the full trial config as
  ``config/<key>`` columns (mappings as ``config/<key>/<name>``). ``duplicate_of``: for
  a duplicate, the finished trial of this sweep with its config; for a finished trial
  whose config an earlier sweep had finished (a warm start, ``search.study``), that trial
  as ``STORAGE/OTHER#TRIAL_ID``: its result and per-language rows are recorded here,
  nothing was trained;
- ``languages.parquet``: long — ``trial_id``, ``task``, ``language``,
  ``metric``, ``value``;
- ``history.parquet``: every report Tune saw — ``trial_id``, ``budget``,
  ``objective``, ``zs_accuracy``, ``zs_ece``, ``time_seconds`` (phase-2 probes and
  phase-3 evaluations alike: a report with ``budget`` ≤ the trial's
  ``config/intermediate_steps`` is a probe, in a two-phase sweep);

Tune sees only ``spaces.objective.TUNE_KEYS``; the rest of a trial's last evaluation
(per-language metrics, ``zs_ece_ts``, ``target_step``, its checkpoint) comes from the
details file its worker writes beside its Train run for that budget
(``trainables.loop.details_file``).
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
import pyarrow.fs as pafs
from ray import tune

from search.failures import error_text
from search.tables import (  # noqa: F401 - search.results is the results API
    KEYS, MAX_PARTS, SCHEMA_KEY, SCHEMA_VERSION, SEQ_KEY, TABLES, PartStore, ResultsError, TableFiles,
    _table, exists, filesystem, list_parts, parts_dir, read_table, read_text, results_dir,
    table_path, train_run_dir, write_atomic, write_part, write_table)
from spaces.config import TrialConfig
from spaces.objective import (ACCURACY_KEY, BUDGET_KEY, DONE_KEY, ECE_KEY, OBJECTIVE_ECE, SCORE_KEY,
                              tune_report)
from spaces.space import SpaceSpec, suggested_config
from spaces.tasks import get_task
from trainables.storage import StorageFullError, is_storage_full

log = logging.getLogger("xstilts.results")

#: the attribute of the log record of a trial's row just recorded: its Tune id (the
#: console counts the trials done by these, not by Tune's trial ends, which a resumed
#: sweep's replays of recorded trials repeat)
RECORDED_ATTR = "xstilts_recorded"

CORE_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("sweep", pa.string()), ("trial_id", pa.string()), ("config_hash", pa.string()),
    ("status", pa.string()), ("error", pa.string()), ("duplicate_of", pa.string()),
    ("objective", pa.float64()), ("zs_accuracy", pa.float64()), ("zs_ece", pa.float64()),
    ("zs_ece_ts", pa.float64()), ("budget", pa.int64()), ("target_step", pa.int64()),
    ("wall_seconds", pa.float64()),
    ("checkpoint_path", pa.string()), ("finished_at", pa.float64()), ("versions", pa.string()),
)
LANGUAGE_COLUMNS = (("trial_id", pa.string()), ("task", pa.string()), ("language", pa.string()),
                    ("metric", pa.string()), ("value", pa.float64()))
HISTORY_COLUMNS = (("trial_id", pa.string()), ("budget", pa.int64()),
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
METRIC_COLUMNS = {SCORE_KEY: "objective", ACCURACY_KEY: "zs_accuracy", ECE_KEY: "zs_ece",
                  OBJECTIVE_ECE["scaled"]: "zs_ece_ts", BUDGET_KEY: "budget"}
_LOOKUP = ["trial_id", "config_hash", "status", "error", "duplicate_of",
           *METRIC_COLUMNS.values()]


def reported_metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a trial recorded in ``row`` reported to Tune, so it can be reported again (both
    ECEs: a multi-objective sweep's second value may be either)."""
    out = {key: row[col] for key, col in METRIC_COLUMNS.items() if row[col] is not None}
    return {**tune_report({**out, DONE_KEY: row["status"] == "finished"}, [*out, DONE_KEY]),
            "trial_id": row["trial_id"]}


def lookup(sweep_path: str, trial_id: str, config_hash: str
           ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """What the sweep already holds for a trial about to run, from one read of ``trials``:
    the trial's own row, if recorded, and the reported metrics of a trial that ran the same
    config (finished, else stopped early; an original before a duplicate), if any.

    A stopped config drawn again is answered with its last report, not trained again: the
    same seed trains to the same score at the budget ASHA stopped it at. It is how a trial
    that Tune's last snapshot lacks and the resumed searcher draws again is recorded once
    (``ResultsWriter._redrawn``) whether it had finished or been stopped."""
    table = read_table(sweep_path, "trials", columns=_LOOKUP)
    if table is None:
        return None, None
    table = table.select(_LOOKUP)
    own = table.filter(pc.equal(table["trial_id"], trial_id)).to_pylist()
    same = table.filter(pc.and_(pc.equal(table["config_hash"], config_hash),
                                pc.is_in(table["status"], pa.array(["finished", "stopped"]))))
    ran = min(same.to_pylist(), default=None,
              key=lambda r: (r["status"] != "finished", r["duplicate_of"] is not None))
    return (own[0] if own else None), (reported_metrics(ran) if ran else None)


# -- the writer -------------------------------------------------------------------------------
class ResultsWriter(tune.Callback):
    """Tune callback that records each trial as it ends: its rows, as parts.

    The parts are written before the callback returns, so before Tune's next experiment
    snapshot can call the trial ended: a row held back to batch writes could be lost to a
    kill -9 while Tune's state says the trial is done, and a resumed sweep would never
    replay it. Writing is O(rows of the trial), not O(rows of the sweep).
    """

    def __init__(self, sweep_path: str, *, sweep: str, base: TrialConfig, spec: SpaceSpec,
                 max_parts: int = MAX_PARTS, keep_models: int = 5):
        self.sweep_path, self.sweep, self.base, self.spec = sweep_path, sweep, base, spec
        self.max_parts, self.keep_models = max_parts, keep_models
        self._reset()

    def _reset(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.history_keys: set[tuple[str, Any]] = set()
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.store: PartStore | None = None
        #: why the storage is full, once it is: nothing more is written
        self.full: str | None = None
        #: trials an earlier driver recorded that Tune's last snapshot lacks, each drawn again
        self.redrawn: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        # pickled into Tune's experiment state: the tables are on storage, not in the pickle
        return {k: self.__dict__[k]
                for k in ("sweep_path", "sweep", "base", "spec", "max_parts", "keep_models")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"max_parts": MAX_PARTS, "keep_models": 5, **state})
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
        if SCORE_KEY not in result:
            return
        self.pending.setdefault(trial.trial_id, []).append({
            "trial_id": trial.trial_id, "budget": result.get(BUDGET_KEY),
            "objective": result.get(SCORE_KEY), "zs_accuracy": result.get(ACCURACY_KEY),
            "zs_ece": result.get(ECE_KEY), "time_seconds": result.get("time_total_s")})

    def on_trial_complete(self, iteration, trials, trial, **info):
        if self.full is None and not self._redrawn(trials, trial):
            self._record(trial, error=None)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._stop_if_full(error_text(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        if self.full is None:
            error = error_text(trial)
            self._stop_if_full(error)
            self._record(trial, error=error)

    def _redrawn(self, trials, trial) -> bool:
        """Whether ``trial`` is a trial an earlier driver recorded, drawn again.

        Tune's snapshot lags its trials: a trial started, recorded and killed with its
        driver between two snapshots is unknown to the resumed Tune, whose searcher
        suggests its configuration again (``search.searcher.BudgetedSearch``) for a trial
        that reports the recorded result (a duplicate, nothing trained). That row already
        stands for it: a second one would spend the budget twice on one trial. Each such
        row stands for one trial of its config; a later one is a duplicate."""
        if not (trial.last_result or {}).get("duplicate_of"):
            return False
        config_hash = suggested_config(self.base, trial.config, self.spec).config_hash()
        known = {t.trial_id for t in trials}
        lost = next((tid for tid, row in self.rows.items()
                     if row["config_hash"] == config_hash and tid not in known
                     and tid not in self.redrawn), None)
        if lost is None:
            return False
        self.redrawn.add(lost)
        self.pending.pop(trial.trial_id, None)
        log.info("trial %s: trial %s drawn again (recorded after Tune's last snapshot)",
                 trial.trial_id, lost)
        return True

    def _stop_if_full(self, cause: str) -> None:
        """Storage full: record nothing more and stop the sweep (Tune ends the run at the
        exception, before its next snapshot: the trial is resumed, not recorded failed)."""
        if is_storage_full(cause):
            self.full = cause
            raise StorageFullError(cause)

    def on_experiment_end(self, trials, **info):
        """Fold every part into the tables: a finished sweep's three files are complete;
        delete the checkpoints a stopped trial uploaded while it was being stopped."""
        if self.store is None or self.full is not None:
            return
        self._collect_checkpoints()
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
        reused = result.get("reused_from")  # finished in an earlier sweep (a warm start)
        if reused:
            details = {**reused_details(reused, self.base.target),
                       **{k: result.get(k) for k in ("zs_ece_ts", "target_step")}}
        elif error or result.get("duplicate_of"):
            details = {}
        else:
            details = read_details(self.sweep_path, trial.trial_id, result.get(BUDGET_KEY))
        config = suggested_config(self.base, trial.config, self.spec)
        if error:
            status = "error"
        elif result.get(DONE_KEY):  # a duplicate's: the trial it repeats finished
            status = "duplicate" if result.get("duplicate_of") else "finished"
        else:
            status = "stopped"
        row = {
            "sweep": self.sweep, "trial_id": trial.trial_id, "config_hash": config.config_hash(),
            "status": status, "error": error,
            "duplicate_of": reused or result.get("duplicate_of") or None,
            "objective": result.get(SCORE_KEY),
            "zs_accuracy": details.get(ACCURACY_KEY, result.get(ACCURACY_KEY)),
            "zs_ece": details.get(ECE_KEY, result.get(ECE_KEY)), "zs_ece_ts": details.get("zs_ece_ts"),
            "budget": result.get(BUDGET_KEY), "target_step": details.get("target_step"),
            "wall_seconds": result.get("time_total_s"),
            "checkpoint_path": None,  # set below for the models kept
            "finished_at": time.time(),
            "versions": versions(), **config_columns(config),
        }
        self.rows[trial.trial_id] = row
        languages = language_rows(trial.trial_id, config, details)
        history = []
        for h in self.pending.pop(trial.trial_id, []):
            if (h["trial_id"], h["budget"]) not in self.history_keys:
                self.history_keys.add((h["trial_id"], h["budget"]))
                if h["zs_accuracy"] is None and not (result.get("duplicate_of") or reused):
                    # not sent to Tune (scalar mode): the terms are in that budget's details
                    d = details if h["budget"] == row["budget"] else \
                        read_details(self.sweep_path, trial.trial_id, h["budget"])
                    h.update(zs_accuracy=d.get(ACCURACY_KEY), zs_ece=d.get(ECE_KEY))
                history.append(h)
        if self.store is None:
            self.store = PartStore(self.sweep_path, max_parts=self.max_parts)
        model, evicted = self._place_model(row)
        try:  # history and languages first: a row in trials promises its details exist
            self.store.append({"history": _table(history, HISTORY_COLUMNS),
                               "languages": _table(languages, LANGUAGE_COLUMNS),
                               "trials": _table([row, *evicted], CORE_COLUMNS)})
        except OSError as exc:
            self._stop_if_full(f"{type(exc).__name__}: {exc}")
            raise
        # recorded: nothing resumes from these checkpoints any more (a resumed sweep
        # replays the row); an error's checkpoints stay, for a look or a retry. Never
        # before: a driver killed before the row is written restarts the trial through
        # Train, which refuses to start if a checkpoint its run snapshot names is gone
        if status != "error":
            _delete_checkpoints(self.sweep_path, row["trial_id"], keep=model)
        for gone in evicted:
            _delete_checkpoints(self.sweep_path, gone["trial_id"], keep=None)
        score = f"{row['objective']:.4f}" if row["objective"] is not None else "-"
        log.info("trial %s %s: score %s, tasks %s", trial.trial_id, status, score,
                 "+".join(config.intermediate_tasks), extra={RECORDED_ATTR: trial.trial_id})


    def _collect_checkpoints(self) -> None:
        """Delete every checkpoint on storage that no recorded row keeps (errors' stay): one
        listing of the sweep's Train runs. A trial stopped by ASHA may finish uploading a
        checkpoint after its row was recorded and its checkpoints deleted."""
        fs, root = filesystem(f"{self.sweep_path}/train")
        kept = {r["checkpoint_path"] for r in self.rows.values() if r.get("checkpoint_path")}
        ended = {train_run_dir(self.sweep_path, t).rsplit("/", 1)[-1]
                 for t, r in self.rows.items() if r["status"] != "error"}
        try:
            runs = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
            for run in runs:
                if run.type != pafs.FileType.Directory or run.base_name not in ended:
                    continue
                for info in fs.get_file_info(pafs.FileSelector(run.path)):
                    if (info.type == pafs.FileType.Directory
                            and info.base_name.startswith("checkpoint_")
                            and _as_uri(info.path, self.sweep_path) not in kept):
                        fs.delete_dir(info.path)
        except OSError as exc:  # storage keeps them; nothing recorded depends on it
            log.warning("could not delete the checkpoints of ended trials: %s", exc)

    def _place_model(self, row: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
        """Keep ``row``'s model if it is among the ``keep_models`` best finished trials:
        its ``checkpoint_path`` then names its last checkpoint (weights only). Returns that
        checkpoint's path (None where no model is kept) and the rows of trials it pushes
        out (``checkpoint_path`` cleared). Deletes nothing: the row is not recorded yet."""
        if row["status"] != "finished" or self.keep_models <= 0 or row["objective"] is None:
            return None, []
        path = _newest_checkpoint(self.sweep_path, row["trial_id"])
        if path is None:  # a surrogate trial, or a replay: no model to keep
            return None, []
        kept = [r for r in self.rows.values()
                if r.get("checkpoint_path") and r["trial_id"] != row["trial_id"]]
        ranked = sorted([*kept, row], key=lambda r: (-r["objective"], r["trial_id"]))
        if row not in ranked[:self.keep_models]:
            return None, []
        row["checkpoint_path"] = _as_uri(path, self.sweep_path)
        evicted = [{**r, "checkpoint_path": None} for r in ranked[self.keep_models:]]
        for r in evicted:
            self.rows[r["trial_id"]] = r
        return path, evicted


def language_rows(trial_id: str, config: TrialConfig,
                  details: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The languages table's rows of a trial's evaluation: ``<lang>/<metric>`` of its
    target, and ``<set>/<lang>/<metric>`` of each out-of-domain set (its ``task``)."""
    langs = set(get_task(config.target).languages)
    sets = set(config.ood_targets)
    rows = []
    for key, value in details.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        parts = key.split("/")
        if len(parts) == 2 and parts[0] in langs:
            task, lang, metric = config.target, *parts
        elif len(parts) == 3 and parts[0] in sets and parts[1] in langs:
            task, lang, metric = parts
        else:
            continue
        rows.append({"trial_id": trial_id, "task": task, "language": lang, "metric": metric,
                     "value": float(value)})
    return rows


def _checkpoints(sweep_path: str, trial_id: str) -> tuple[pafs.FileSystem, list[tuple[int, str]]]:
    """A trial's Train checkpoints, ``(step, path)`` oldest first (none where its run's
    folder cannot be listed), and the filesystem they are on."""
    from trainables.loop import checkpoint_steps

    fs, run_dir = filesystem(train_run_dir(sweep_path, trial_id))
    try:
        return fs, checkpoint_steps(fs, run_dir)
    except OSError:
        return fs, []


def _newest_checkpoint(sweep_path: str, trial_id: str) -> str | None:
    """The path of a trial's newest whole checkpoint (a cut-short one, step -1, never)."""
    found = _checkpoints(sweep_path, trial_id)[1]
    return found[-1][1] if found and found[-1][0] >= 0 else None


def _delete_checkpoints(sweep_path: str, trial_id: str, *, keep: str | None) -> None:
    """Delete a trial's Train checkpoints, all but ``keep`` (a path; None: all of them)."""
    fs, found = _checkpoints(sweep_path, trial_id)
    for _, path in found:
        if path == keep:
            continue
        try:
            fs.delete_dir(path)
        except OSError as exc:  # storage keeps it; the sweep goes on
            log.warning("could not delete checkpoint %s: %s", path, exc)


def read_details(sweep_path: str, trial_id: str, budget: Any) -> dict[str, Any]:
    """The details of a trial's evaluation at ``budget`` (per-language metrics, ``zs_ece_ts``,
    ``target_step``, ``checkpoint_path``), from the file its worker wrote beside its Train run
    before reporting; empty when there is none for that budget (a surrogate trial, or a
    worker that died between writing and reporting). JSON: reading it runs no code."""
    from trainables.loop import details_file

    if budget is None:
        return {}
    name = details_file(budget)
    text = read_text(f"{train_run_dir(sweep_path, trial_id)}/{name}")
    if text is None:
        return {}
    try:
        details = json.loads(text)
    except ValueError:
        log.warning("trial %s: unreadable %s, per-language metrics not recorded",
                    trial_id, name)
        return {}
    if not isinstance(details, dict) or details.get(BUDGET_KEY) != budget:
        return {}
    return details


def reused_details(ref: str, target: str) -> dict[str, Any]:
    """The per-language metrics of the earlier sweep's trial ``ref`` (``STORAGE/OTHER#ID``)
    of ``target`` as ``read_details`` gives them (``<lang>/<metric>``, and
    ``<set>/<lang>/<metric>`` for an out-of-domain set), read from that sweep's languages
    table: a reused trial's rows carry them as its own."""
    source, _, trial_id = ref.rpartition("#")
    try:
        table = read_table(source, "languages")
    except (OSError, ResultsError) as exc:
        log.warning("per-language metrics of %s not copied: %s", ref, exc)
        return {}
    if table is None:
        return {}
    out: dict[str, Any] = {}
    for r in table.filter(pc.equal(table["trial_id"], trial_id)).to_pylist():
        key = f"{r['language']}/{r['metric']}"
        out[key if r["task"] == target else f"{r['task']}/{key}"] = r["value"]
    return out


def _as_uri(path: str | None, sweep_path: str) -> str | None:
    """A checkpoint path as Ray reports it (``bucket/key`` on S3), as a URI like the sweep's."""
    if path and "://" in sweep_path and "://" not in path:
        return f"{sweep_path.split('://', 1)[0]}://{path}"
    return path
