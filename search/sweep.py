"""Run a sweep: Ray Tune + Optuna (+ ASHA) over the space, results to Parquet."""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Any, Mapping

import optuna
import pyarrow.fs as pafs
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter

from search.console import Console
from search.results import ResultsWriter, filesystem
from search.searcher import BudgetedSearch, make_searcher, pruning_searcher
from search.study import warm_start
from search.tune_trials import surrogate_trial, trial_resources, tune_trial
from trainables.storage import StorageFullError, fail_fast, is_storage_full, run_filesystem
from trainables.surrogate import surrogate_longest
from spaces.config import ConfigError, TrialConfig
from spaces.objective import BUDGET_KEY, SCORE_KEY, tune_keys
from spaces.packing import idle_gpu_note, sweep_packing_problems
from spaces.sweep import SweepConfig
from spaces.models import get_model_size

class _NoTrialLogFiles(logging.Filter):
    """Tune's ResultGrid looks for each trial's JSON/CSV log, which xstilts does not write
    (the sweep's tables hold its results), and warns once listing every trial."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to fetch metrics for")


logging.getLogger("ray.tune.analysis.experiment_analysis").addFilter(_NoTrialLogFiles())


@dataclass(frozen=True)
class SweepPlan:
    """Everything a sweep needs, validated before anything starts."""

    storage: str
    name: str
    base: TrialConfig
    sweep: SweepConfig
    #: earlier sweeps (STORAGE/NAME) whose finished trials seed this one
    #: (``search.study.warm_start``), kept in the manifest for ``resume``
    warm_start: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = sweep_packing_problems(self.base, self.sweep)
        if problems:  # a size the space draws would not fit its GPU share
            raise ConfigError(problems)

    @property
    def path(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"




def check_storage(storage: str) -> None:
    """Fail before launch, within seconds, if the storage cannot be written."""
    if "://" in storage and "?" in storage:
        raise PermissionError(
            f"storage {storage!r} carries a query string, and sweep paths are appended to the "
            "storage URI; give s3://BUCKET/PREFIX and set the endpoint, region and credentials "
            "in the environment (AWS_ENDPOINT_URL, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, ...)")
    try:
        fs, path = filesystem(storage)
    except ValueError as exc:  # pyarrow.ArrowInvalid: an unknown scheme, a malformed URI
        raise PermissionError(f"storage {storage!r} is not a folder or a URI pyarrow can open "
                              f"({exc})") from None
    fs = fail_fast(fs)
    probe = f"{path.rstrip('/')}/.xstilts-write-check"
    try:
        fs.create_dir(path, recursive=True)
        with fs.open_output_stream(probe) as f:
            f.write(b"ok")
        fs.delete_file(probe)
    except OSError as exc:
        raise PermissionError(
            f"storage {storage!r} is not writable ({exc}); give a folder or URI this machine "
            "(and every node of a cluster) can write to") from None


@dataclass
class SweepOutcome:
    results: tune.ResultGrid
    #: the Optuna study the sweep's sampler learned from (finished, pruned, failed trials)
    study: optuna.Study | None


MANIFEST = "xstilts-sweep.json"
MANIFEST_VERSION = 1


def write_manifest(plan: SweepPlan) -> None:
    """What ``resume`` needs to rebuild the plan, written once before the first trial."""
    from search.results import versions

    body = {"xstilts.manifest": MANIFEST_VERSION, "name": plan.name,
            "base": plan.base.to_dict(), "sweep": plan.sweep.to_dict(),
            "versions": json.loads(versions())}
    if plan.warm_start:
        body["warm_start"] = list(plan.warm_start)
    _write_manifest_body(plan.path, body)


def _write_manifest_body(sweep_path: str, body: dict) -> None:
    from search.results import write_atomic

    write_atomic(f"{sweep_path.rstrip('/')}/{MANIFEST}",
                 json.dumps(body, indent=1, sort_keys=True).encode())


def raise_budget(sweep_path: str, trials: int) -> None:
    """Rewrite the manifest's trial budget (``xstilts resume --trials``), everything else in
    it (the versions that started the sweep included) as it was."""
    body = read_manifest(sweep_path.rstrip("/"))
    body["sweep"]["trials"] = trials
    _write_manifest_body(sweep_path, body)


def load_plan(sweep_path: str) -> SweepPlan:
    """The plan of an existing sweep at ``STORAGE/NAME``, from its manifest."""
    sweep_path = sweep_path.rstrip("/")
    return plan_from_manifest(sweep_path, read_manifest(sweep_path))


def plan_from_manifest(sweep_path: str, body: dict) -> SweepPlan:
    """The plan in ``body``, the manifest (``read_manifest``) of the sweep at ``sweep_path``."""
    storage, _, name = sweep_path.rpartition("/")
    return SweepPlan(storage=storage, name=name, base=TrialConfig.from_dict(body["base"]),
                     sweep=SweepConfig.from_dict(body["sweep"]),
                     warm_start=tuple(body.get("warm_start", ())))


def read_manifest(sweep_path: str) -> dict:
    """The manifest of the sweep at ``sweep_path`` (no trailing slash) as written, with the
    package versions that started it under ``versions``; FileNotFoundError without one."""
    from search.results import exists, read_text

    manifest = f"{sweep_path}/{MANIFEST}"
    text = read_text(manifest)
    if text is None:
        what = "no sweep" if not exists(sweep_path) else "a folder without a sweep manifest"
        raise FileNotFoundError(
            f"{sweep_path} is {what} ({MANIFEST} is missing); give the STORAGE/NAME folder "
            "that `xstilts run` created, or start a new sweep with `xstilts run`")
    try:
        body = json.loads(text)
        version = int(body["xstilts.manifest"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError([f"{manifest} is not a readable sweep manifest ({exc}); it is "
                           "written by `xstilts run` and should not be edited"]) from None
    if version > MANIFEST_VERSION:
        raise ConfigError([f"{manifest} was written by a newer xstilts (manifest version "
                           f"{version}, this one reads {MANIFEST_VERSION}); upgrade xstilts"])
    return body


#: Tune's experiment folder inside the sweep's: Tune re-uploads the *.json/*.pkl files at
#: the root of its folder on every snapshot, so the sweep's own files live beside it
TUNE_DIR = "tune"


def can_resume(sweep_path: str) -> bool:
    """Whether Tune saved an experiment state in ``sweep_path`` to resume from."""
    fs, path = run_filesystem(sweep_path)
    return tune.Tuner.can_restore(f"{path}/{TUNE_DIR}", storage_filesystem=fs)


#: ASHA's ``max_t``: no trial is cut short for its length, only for its scores at rungs
MAX_BUDGET = 10**9
SNAPSHOT_ENV = "TUNE_GLOBAL_CHECKPOINT_S"
#: seconds between snapshots of a model sweep's Tune state (``_snapshot_period``)
MODEL_SNAPSHOT_S = 5
#: the period a user set for Tune's snapshots, which every sweep of this process keeps
_USER_SNAPSHOT = os.environ.get(SNAPSHOT_ENV)


def _snapshot_period(sweep: SweepConfig) -> str:
    """Seconds between snapshots of Tune's state (trials, searcher, scheduler).

    Tune's state holds ~8-10 KB per trial: the score, budget and done, and no statistics
    of Tune's own counters (``TUNE_COUNTERS``). 8.2 KB on the demo sweep
    (``benchmarks/sweep_cost.py tune-breakdown``), 10.1 KB for paper-base surrogate
    trials (``tune-state``); with those statistics ``tune-state`` measured 14.5 KB a trial
    and 0.2 s a snapshot at 1,000 surrogate trials, 103 KB and 0.75 s when per-language
    metrics went to Tune; all of it rewritten at each snapshot. A model sweep: every 5 s,
    ~4 % of the driver's time at 1,000 trials (a snapshot a second would take 20 %); a
    driver killed between snapshots loses at most the first seconds of the trials it
    started since, less than their start-up (10-15 s), and nothing they recorded. A
    surrogate sweep runs thousands of one-second trials: Tune's ``auto`` keeps snapshots
    to ~5 % of its time (every ≥ 10 s). On resume, trials recorded after the last
    snapshot are replayed from the results either way (a trial started after it is drawn
    again: ``search.results.ResultsWriter._redrawn``)."""
    if _USER_SNAPSHOT:
        return _USER_SNAPSHOT
    return "auto" if sweep.trainable == "surrogate" else str(MODEL_SNAPSHOT_S)


def tracker_callbacks(plan: SweepPlan, log_to: list[str]) -> list:
    """Ray Tune's own logger callbacks for ``log_to``, one run per trial with its config and
    every metric it reports: ``mlflow`` (default tracking URI: an SQLite store,
    ``sqlite:///STORAGE/NAME/mlflow.db``, for a local sweep: MLflow 3 keeps its file store in
    maintenance mode; else ``MLFLOW_TRACKING_URI`` or MLflow's default), ``mlflow:URI``,
    ``wandb`` (offline unless ``WANDB_MODE`` says otherwise; project = the sweep's name). ValueError names an unknown
    one."""
    out = []
    for item in log_to:
        kind, _, uri = item.partition(":")
        if kind == "mlflow":
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            if not uri and "://" not in plan.path:
                uri = f"sqlite:///{os.path.abspath(plan.path)}/mlflow.db"
            out.append(MLflowLoggerCallback(tracking_uri=uri or None, experiment_name=plan.name,
                                            tags={"xstilts.sweep": plan.path}))
        elif kind == "wandb" and not uri:
            from ray.air.integrations.wandb import WandbLoggerCallback

            os.environ.setdefault("WANDB_MODE", "offline")
            out.append(WandbLoggerCallback(project=plan.name, log_config=True))
        else:
            raise ValueError(f"--log-to {item!r} is unknown; use mlflow, mlflow:TRACKING_URI or "
                             "wandb")
    return out


def run_sweep(plan: SweepPlan, *, resume: bool = False, log_to: list[str] | None = None,
              console: tune.Callback | None = None) -> SweepOutcome:
    """Run the sweep at ``plan.path`` until its trial budget is spent.

    ``log_to``: experiment trackers (``tracker_callbacks``), kept by a resume with the rest
    of Tune's run config. ``console``: the driver's live view (``search.console``). While
    it runs, the sweep's driver lock names this process and beats every 30 s
    (``search.status``); a second driver is refused with ``DrivenError``.

    ``resume``: continue a sweep whose driver died. Tune restores its trials, the
    scheduler and the Optuna study from its last snapshot; trials that the results
    already record are replayed from there without training, unfinished ones continue
    from their last Train checkpoint.
    """
    check_storage(plan.storage)
    from search.status import driver_lock

    trackers = tracker_callbacks(plan, log_to or [])  # a bad name fails before anything runs
    with driver_lock(plan.path):  # one driver per sweep; its heartbeat for `xstilts status`
        return _run(plan, resume, [*trackers, *([console] if console else [])])


#: Tune's own per-result counters. Tune keeps, in each trial's experiment state, running
#: statistics of every numeric key of its results (min, max, mean, last-5 and last-10
#: means, and the two windows, each pickled): for the first six, those every function
#: trial reports, that is ~3.9 KB of a demo trial's 12.9 KB, rewritten at every snapshot
#: (``timesteps_since_restore`` only where a trainable counts timesteps). Nothing reads
#: them (xstilts reads a trial's last result and its own tables), so Tune keeps only
#: their last values.
TUNE_COUNTERS = ("done", "training_iteration", "time_this_iter_s", "time_total_s",
                 "time_since_restore", "iterations_since_restore", "timesteps_since_restore")


def _skip_counter_statistics() -> None:
    """Have Tune's trials keep no statistics of ``TUNE_COUNTERS``. Tune has no setting for
    it: ``Trial.update_last_result`` skips the keys of its module's ``DEBUG_METRICS``, so
    the counters are added there (the driver's trials only; results, schedulers and
    searchers see every key as before). Should a Ray release move that name, sweeps run
    as before with the statistics kept (``test_sweep_ray`` measures the state's size)."""
    from ray.tune.experiment import trial as tune_trial

    skipped = getattr(tune_trial, "DEBUG_METRICS", None)
    if isinstance(skipped, tuple):
        tune_trial.DEBUG_METRICS = skipped + tuple(k for k in TUNE_COUNTERS if k not in skipped)


def _run(plan: SweepPlan, resume: bool, extra: list) -> SweepOutcome:
    os.environ[SNAPSHOT_ENV] = _snapshot_period(plan.sweep)
    _skip_counter_statistics()
    # Tune's per-trial logs (CSV, TensorBoard, JSON) repeat what the results tables hold:
    # the CSV and TensorBoard ones fsync on every report (ray#23451), and every file in
    # Tune's driver folder is copied to storage again at each snapshot (at 4,000 trials,
    # most of a core). None is written.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    sweep = plan.sweep
    warm = warm_start(plan, missing_ok=resume)
    if warm.counts:
        print(f"xstilts: warm start: {warm.summary()}", flush=True)
    trainable = _trainable(plan, warm.finished)
    if plan.base.use_gpu:
        import ray

        note = idle_gpu_note(plan.base, sweep, float(ray.cluster_resources().get("GPU", 0)))
        if note:
            print(f"xstilts: warning: {note}", file=sys.stderr)
    fs, path = run_filesystem(plan.path)  # local folders: Tune's files written atomically
    if resume:
        tuner = tune.Tuner.restore(f"{path}/{TUNE_DIR}", trainable=trainable,
                                   resume_unfinished=True, resume_errored=False,
                                   restart_errored=False, storage_filesystem=fs)
        _set_budget(tuner, plan.sweep.trials, plan.path)
        run_config = tuner._local_tuner.get_run_config()
        # the previous driver's console is a dead one; this driver's (if any) takes its place
        run_config.callbacks = [cb for cb in run_config.callbacks or []
                                if not isinstance(cb, Console)] + \
            [cb for cb in extra if isinstance(cb, Console)]
        for cb in run_config.callbacks:
            if isinstance(cb, ResultsWriter):  # the sweep folder may have moved since
                cb.sweep_path = plan.path
        optuna_search = _inner_searcher(tuner)
    else:
        write_manifest(plan)
        optuna_search = make_searcher(sweep, plan.base.objective_ece, priors=_priors(plan),
                                      earlier=warm.trials)
        searcher = ConcurrencyLimiter(optuna_search, max_concurrent=_staged(sweep))
        if sweep.asha_grace > 0:
            scheduler = ASHAScheduler(time_attr=BUDGET_KEY, metric=SCORE_KEY, mode="max",
                                      grace_period=sweep.asha_grace,
                                      reduction_factor=sweep.asha_reduction, max_t=MAX_BUDGET)
        else:
            scheduler = FIFOScheduler()
        writer = ResultsWriter(plan.path, sweep=plan.name, base=plan.base, spec=sweep.space,
                               keep_models=sweep.keep_models)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                        num_samples=sweep.trials,
                                        reuse_actors=sweep.trainable == "surrogate",
                                        trial_dirname_creator=_trial_dirname),
            run_config=tune.RunConfig(
                name=TUNE_DIR, storage_path=path, storage_filesystem=fs,
                callbacks=[writer, *extra],
                verbose=int(os.environ.get("XSTILTS_TUNE_VERBOSE", "0")),
                # transient faults (OOM, a lost node) retry from the trial's checkpoint
                failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
        )
    try:
        results = tuner.fit()
    except Exception as exc:  # Tune wraps what stopped it in a TuneError
        if is_storage_full(exc):
            raise StorageFullError(storage_full_message(plan, exc)) from None
        raise
    return SweepOutcome(results=results, study=optuna_search.study if optuna_search else None)


def _priors(plan: SweepPlan) -> list[dict] | None:
    """The first trials ``search.priors`` asks for: from the sweep's similarity estimates,
    computed and written beside the results first where there are none (also for
    ``search.similarity``, which asks for the estimates only)."""
    if plan.sweep.priors != "similarity" and not plan.sweep.similarity:
        return None
    from search.priors import prior_points
    from search.similarity import (compute_similarity, read_similarity, task_estimates,
                                   write_similarity)

    frame = read_similarity(plan.path)
    if frame is None:
        print(f"xstilts: priors: computing similarity estimates into {plan.path}", flush=True)
        frame = compute_similarity(plan.base, plan.sweep, seeds=[plan.base.seed])
        write_similarity(frame, plan.path)
    if plan.sweep.priors != "similarity":
        return None
    points = prior_points(plan.sweep, task_estimates(frame, plan.base.target))
    arms = ["+".join(t.removeprefix("task/") for t, on in p.items() if on) for p in points]
    print(f"xstilts: priors: the first {len(points)} trials include {'; '.join(arms)}",
          flush=True)
    return points


def _trial_dirname(trial) -> str:
    """A trial's folder: its name (Tune's default spells out its parameters, which Tune's
    state then repeats for every trial at every snapshot)."""
    return str(trial)


def storage_full_message(plan: SweepPlan, error: BaseException) -> str:
    """What to tell a user whose sweep stopped because its storage is full: which storage,
    what it said, what a trial needs there, and how to go on."""
    cause = next((line.strip() for line in str(_innermost(error)).splitlines()
                  if is_storage_full(line)), str(_innermost(error)).strip().splitlines()[-1:])
    need = _checkpoint_bytes(plan)
    free = ""
    if "://" not in plan.storage:
        try:
            free = f"; {_size(shutil.disk_usage(plan.storage).free)} free there now"
        except OSError:
            pass
    return (f"the sweep's storage {plan.storage} is full ({cause}); the sweep stopped, no trial "
            f"was recorded as failed for it and nothing already recorded is lost. A running "
            f"trial needs about {_size(need)} there for its checkpoint{free}. Free "
            f"space (or raise the quota), then go on with: xstilts resume {plan.path}")


def _size(n: float) -> str:
    """Bytes in the largest binary unit that keeps the number at least 1."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:,.1f} TiB"


def _innermost(error: BaseException) -> BaseException:
    """The first ``StorageFullError`` in ``error``'s causes, else the last cause."""
    seen = set()
    while id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, StorageFullError):
            return error
        nxt = error.__cause__ or error.__context__
        if nxt is None:
            return error
        error = nxt
    return error


def _checkpoint_bytes(plan: SweepPlan) -> int:
    """The largest checkpoint of the sweep's trials on storage; without one, the model's
    weights and AdamW state (12 bytes a parameter) at the largest size the space draws."""
    try:
        fs, root = filesystem(f"{plan.path}/train")
        sizes: dict[str, int] = {}
        for info in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)):
            parts = info.path.split("/")
            at = next((i for i, p in enumerate(parts) if p.startswith("checkpoint_")), None)
            if at is not None and at < len(parts) - 1 and info.type == pafs.FileType.File:
                key = "/".join(parts[:at + 1])
                sizes[key] = sizes.get(key, 0) + (info.size or 0)
        if sizes:
            return max(sizes.values())
    except OSError:
        pass
    return int(max(12 * get_model_size(s).params_millions * 1e6
                   for s in plan.sweep.space.model_sizes))


def _staged(sweep: SweepConfig) -> int:
    """Trials the searcher may have out at once. Model trials: ``concurrency``. Surrogate
    trials (without GPUs) are capped at ``concurrency`` by the CPU share each holds, and a
    quarter more wait staged: Tune keeps a finished trial's actor for reuse only if a
    staged trial can take it, and a new actor per one-second trial costs more than the trial."""
    if sweep.trainable == "surrogate":
        return sweep.concurrency + max(1, sweep.concurrency // 4)
    return sweep.concurrency


def _trainable(plan: SweepPlan, reuse: Mapping[str, Mapping[str, Any]]):
    """The Tune trainable of the plan: a model trial (Ray Train) or a surrogate one,
    holding the resources ``search.tune_trials.trial_resources`` gives it. ``reuse``: the
    results of earlier sweeps' finished configs (``search.study.WarmStart.finished``)."""
    sweep, base, spec = plan.sweep, plan.base.to_dict(), plan.sweep.space.to_dict()
    surrogate = sweep.trainable == "surrogate"
    if surrogate:
        # surrogate_seconds is the longest trial's time: each trial's follows its steps
        steps = max(1, sum(surrogate_longest(plan.base, sweep.space)))
        fn = tune.with_parameters(surrogate_trial, base=base, spec=spec, sweep_path=plan.path,
                                  reuse=dict(reuse), rungs=sweep.rungs(MAX_BUDGET),
                                  two_phase=sweep.two_phase,
                                  seconds_per_step=sweep.surrogate_seconds / steps,
                                  reports=sweep.surrogate_reports)
    else:
        schedule = {"rungs": sweep.rungs(MAX_BUDGET), "two_phase": sweep.two_phase}
        fn = tune.with_parameters(tune_trial, base=base, spec=spec, sweep_path=plan.path,
                                  reuse=dict(reuse), schedule=schedule,
                                  keys=tune_keys(sweep.mode, plan.base.objective_ece))
    if surrogate and not plan.base.use_gpu:
        import ray

        share = float(ray.cluster_resources().get("CPU", 1)) / sweep.concurrency
        return tune.with_resources(fn, {"CPU": share})
    return tune.with_resources(fn, functools.partial(trial_resources, base=base, spec=spec,
                                                     surrogate=surrogate))


def _set_budget(tuner: tune.Tuner, trials: int, sweep_path: str) -> None:
    """A restored sweep's trial budget: its manifest's, which ``xstilts resume --trials``
    may have raised since Tune saved its state; and the sweep's results, whose trials
    Tune's last snapshot may lack (``search.searcher.BudgetedSearch``)."""
    config = tuner._local_tuner._tune_config
    config.num_samples = trials
    if not isinstance(config.search_alg, BudgetedSearch):
        config.search_alg = BudgetedSearch(config.search_alg, trials)
    config.search_alg.budget = trials
    config.search_alg.sweep_path = sweep_path  # the sweep folder may have moved since


def _inner_searcher(tuner: tune.Tuner):
    """The restored PruningOptunaSearch, or None where Tune does not expose it."""
    return pruning_searcher(getattr(getattr(tuner._local_tuner, "_tune_config", None),
                                    "search_alg", None))
