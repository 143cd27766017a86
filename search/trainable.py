"""The Tune function trainable: one Tune trial drives one Ray Train run.

Train V2 runs inside a Tune *function* trainable (a ``TorchTrainer`` cannot be
passed to ``tune.Tuner``). The Train run gets a deterministic name from the
Tune trial id and lives under the sweep's storage, so a re-run trial finds its
Train checkpoints and continues. Only reports that carry the objective reach
Tune: the end-of-phase-2 checkpoint report has none, and ASHA and Optuna need
one in every result.
"""

from __future__ import annotations

import time
from typing import Any

import ray.tune
from ray.train import TrainingFailedError
from ray.tune.integration.ray_train import TuneReportCallback

from search import results
from spaces.config import TrialConfig
from spaces.models import gpu_share
from spaces.objective import score
from spaces.space import SpaceSpec, trial_config

OBJECTIVE_KEY = "score"


class ObjectiveReportCallback(TuneReportCallback):
    """Forward rank 0's reports to Tune, but only those that carry the objective."""

    def after_report(self, run_context, metrics, checkpoint):
        if metrics and OBJECTIVE_KEY in metrics[0]:
            super().after_report(run_context, metrics, checkpoint)


def tune_trial(params: dict[str, Any], *, base: dict[str, Any], spec: dict[str, Any],
               sweep_path: str) -> None:
    from trainables.trial import make_trainer

    cfg = _config(params, base, spec)
    trial_id = ray.tune.get_context().get_trial_id()
    if _answered(sweep_path, trial_id, cfg):
        return
    run_dir = f"{sweep_path}/train/train-{trial_id}"
    failed = results.read_failure(run_dir)
    if failed is not None:  # a permanent fault: a retry would fail the same way
        raise RuntimeError(failed)
    trainer = make_trainer(cfg, storage_path=f"{sweep_path}/train", name=f"train-{trial_id}",
                           callbacks=[ObjectiveReportCallback()])
    try:
        trainer.fit()
    except TrainingFailedError as exc:
        cause = root_cause(exc)
        if is_permanent(cause):
            results.write_failure(run_dir, cause)
        raise RuntimeError(cause) from None


def _config(params: dict[str, Any], base: dict[str, Any], spec: dict[str, Any]) -> TrialConfig:
    """The full trial config of Tune's suggestion ``params``."""
    return trial_config(TrialConfig.from_dict(base), params, SpaceSpec.from_dict(spec))


def _answered(sweep_path: str, trial_id: str, cfg: TrialConfig) -> bool:
    """Report a result the sweep already has, if it has one; then nothing is trained."""
    own, done = results.lookup(sweep_path, trial_id, cfg.config_hash())
    if own is not None:
        # recorded before the driver died, after Tune's last snapshot: replay, train nothing
        if own["status"] == "error":
            raise RuntimeError(own["error"] or "trial failed before the sweep was resumed")
        ray.tune.report({**results.reported_metrics(own), "replayed": True})
        return True
    if done is not None:
        # the same config already finished in this sweep: report its result, train nothing
        ray.tune.report({**done, "duplicate_of": done.get("trial_id", "")})
        return True
    return False


def surrogate_trial(params: dict[str, Any], *, base: dict[str, Any], spec: dict[str, Any],
                    sweep_path: str, seconds: float, reports: int, step: int) -> None:
    """A trial without a model (``search.trainable: surrogate``): the known function of
    ``trainables.surrogate``, reported ``reports`` times over ``seconds`` at target steps
    ``step``, ``2·step``, … like a training run whose score climbs to its final value."""
    from trainables.surrogate import surrogate_metrics

    cfg = _config(params, base, spec)
    if _answered(sweep_path, ray.tune.get_context().get_trial_id(), cfg):
        return
    final = surrogate_metrics(cfg)
    start = time.monotonic()
    for k in range(1, reports + 1):
        # report on schedule: a report waits for the driver to take it, and that wait
        # belongs to the trial's time, as a real trial's training goes on meanwhile
        time.sleep(max(0.0, start + k * seconds / reports - time.monotonic()))
        acc = max(0.0, final["zs_accuracy"] - 0.02 * (reports - k) / reports)
        # done: Tune ends the trial at its last report instead of asking the function for
        # one more result (a round trip to the actor per trial)
        ray.tune.report({"zs_accuracy": acc, "zs_ece": final["zs_ece"],
                         "score": score(acc, final["zs_ece"], weight=cfg.objective_weight),
                         "target_step": k * step, "target_steps": reports * step,
                         "finished": k == reports, "done": k == reports})


def trial_resources(config: dict[str, Any], *, base: dict[str, Any], spec: dict[str, Any],
                    surrogate: bool):
    """What a Tune trial holds. A model trial only drives its TorchTrainer, whose workers
    hold the CPUs/GPUs; a surrogate trial holds the GPU share of its model size itself
    (so an autoscaler sees the same demand). Ray refuses an all-zero request: otherwise a
    token 1 MiB of memory."""
    from ray.tune import PlacementGroupFactory

    cfg = _config(config, base, spec)
    if surrogate and cfg.use_gpu:
        # no memory token here: an autoscaler launches only node types that list every
        # resource a request names
        return PlacementGroupFactory([{"CPU": 0, "GPU": gpu_share(cfg, cfg.model_size)}])
    return PlacementGroupFactory([{"CPU": 0, "memory": 2**20}])


#: errors a retry would meet again: bad numbers, bad data (``DataUnavailableError``: a
#: missing dataset, config, split or file, offline without a cache), bad config, bugs
PERMANENT = ("FloatingPointError", "ValueError", "KeyError", "TypeError", "IndexError",
             "ConfigError", "DataUnavailableError", "FileNotFoundError", "NotImplementedError")
#: errors that say they may pass: ``FetchError`` (``trainables.retry``) is a download that
#: failed on every in-process attempt for a passing reason (connection, timeout, HTTP 429/5xx)
TRANSIENT = ("FetchError",)


def is_permanent(cause: str) -> bool:
    """Whether a trial's root cause is one that retrying from a checkpoint cannot fix.

    Anything else (CUDA out of memory, a lost node or worker, I/O, a ``FetchError``) is
    transient: Tune retries the trial (``search.max_failures``) and it continues from its
    checkpoint.
    """
    head = cause.split(":", 1)[0].rsplit(".", 1)[-1].strip()
    return head in PERMANENT and head not in TRANSIENT


def root_cause(exc: BaseException) -> str:
    """``SomethingError: message`` of what failed a trial: the exception of the lowest
    failed rank where Ray Train keeps it (``WorkerGroupError.worker_failures``: its
    formatted error keeps only the traceback's last 500 characters, which can cut a long
    message's class name), else the last such line of the error's text, or its last line."""
    failures = getattr(exc, "worker_failures", None)
    if failures:
        first = failures[min(failures)]
        kind = type(first)
        name = kind.__qualname__ if kind.__module__ == "builtins" else \
            f"{kind.__module__}.{kind.__qualname__}"  # as a traceback names it
        return f"{name}: {str(first).strip()}"[:2000]
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error:" in ln.split(" ")[0] or ln.split(":")[0].endswith("Error")]
    return (errors[-1] if errors else lines[-1] if lines else type(exc).__name__)[:2000]
