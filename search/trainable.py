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
    done = results.finished_metrics(sweep_path, cfg.config_hash())
    if done is not None:
        # the same config already finished in this sweep: report its result, train nothing
        ray.tune.report({**done, "duplicate_of": done.get("trial_id", "")})
        return
    trial_id = ray.tune.get_context().get_trial_id()
    trainer = make_trainer(cfg, storage_path=f"{sweep_path}/train", name=f"train-{trial_id}",
                           callbacks=[ObjectiveReportCallback()])
    try:
        trainer.fit()
    except TrainingFailedError as exc:
        raise RuntimeError(root_cause(exc)) from None


def root_cause(exc: BaseException) -> str:
    """The last ``SomethingError: message`` line of a Ray error, or its last line."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error:" in ln.split(" ")[0] or ln.split(":")[0].endswith("Error")]
    return (errors[-1] if errors else lines[-1] if lines else type(exc).__name__)[:2000]
