"""The Tune function trainable: one Tune trial drives one Ray Train run.

Train V2 runs inside a Tune *function* trainable (a ``TorchTrainer`` cannot be
passed to ``tune.Tuner``). The Train run gets a deterministic name from the
Tune trial id and lives under the sweep's storage, so a re-run trial finds its
Train checkpoints and continues. Only reports that carry the objective reach
Tune: the end-of-phase-2 checkpoint report has none, and ASHA and Optuna need
one in every result.
"""

from __future__ import annotations

from typing import Any

import ray.tune
from ray.train import TrainingFailedError
from ray.tune.integration.ray_train import TuneReportCallback

from search import results
from spaces.config import TrialConfig
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

    cfg = trial_config(TrialConfig.from_dict(base), params, SpaceSpec.from_dict(spec))
    trial_id = ray.tune.get_context().get_trial_id()
    own = results.recorded_trial(sweep_path, trial_id)
    if own is not None:
        # recorded before the driver died, after Tune's last snapshot: replay, train nothing
        if own["status"] == "error":
            raise RuntimeError(own["error"] or "trial failed before the sweep was resumed")
        ray.tune.report({**results.reported_metrics(own), "replayed": True})
        return
    done = results.finished_metrics(sweep_path, cfg.config_hash())
    if done is not None:
        # the same config already finished in this sweep: report its result, train nothing
        ray.tune.report({**done, "duplicate_of": done.get("trial_id", "")})
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


#: errors a retry would meet again: bad numbers, bad data, bad config, bugs
PERMANENT = ("FloatingPointError", "ValueError", "KeyError", "TypeError", "IndexError",
             "ConfigError", "DataUnavailableError", "FileNotFoundError", "NotImplementedError")


def is_permanent(cause: str) -> bool:
    """Whether a trial's root cause is one that retrying from a checkpoint cannot fix.

    Anything else (CUDA out of memory, a lost node or worker, I/O) is transient: Tune
    retries the trial (``search.max_failures``) and it continues from its checkpoint.
    """
    head = cause.split(":", 1)[0].rsplit(".", 1)[-1].strip()
    return head in PERMANENT


def root_cause(exc: BaseException) -> str:
    """The last ``SomethingError: message`` line of a Ray error, or its last line."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error:" in ln.split(" ")[0] or ln.split(":")[0].endswith("Error")]
    return (errors[-1] if errors else lines[-1] if lines else type(exc).__name__)[:2000]
