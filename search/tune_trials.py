"""The Tune function trainable: one Tune trial drives one Ray Train run.

Train V2 runs inside a Tune *function* trainable (a ``TorchTrainer`` cannot be
passed to ``tune.Tuner``). The Train run gets a deterministic name from the
Tune trial id and lives under the sweep's storage, so a re-run trial finds its
Train checkpoints and continues. Only reports that carry the objective reach
Tune: the end-of-phase-2 checkpoint report has none, and ASHA and Optuna need
one in every result.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

import ray.tune
from ray.train import TrainingFailedError
from ray.tune.integration.ray_train import TuneReportCallback

from search import results
from search.failures import is_permanent, read_failure, root_cause, write_failure
from search.tables import train_run_dir
from trainables.storage import StorageFullError, is_storage_full
from spaces.config import TrialConfig
from spaces.packing import gpu_share
from spaces.objective import (BUDGET_KEY, DONE_KEY, SCORE_KEY, TUNE_KEYS, budget, tune_keys,
                              tune_report)
from spaces.space import SpaceSpec, suggested_config

class ObjectiveReportCallback(TuneReportCallback):
    """Forward rank 0's reports to Tune, but only those that carry the objective, and of
    them only ``keys`` (``spaces.objective.tune_keys``), without the checkpoint's path:
    Tune's experiment state keeps statistics of every key it is sent, rewritten at each
    snapshot. The rest reaches the sweep's tables from the trial's details file
    (``search.results.read_details``); the results find the checkpoints themselves."""

    def __init__(self, keys: Sequence[str] = TUNE_KEYS):
        super().__init__()
        self.keys = tuple(keys)

    def after_report(self, run_context, metrics, checkpoint):
        if metrics and SCORE_KEY in metrics[0]:
            sent = [tune_report(m, self.keys) for m in metrics]
            super().after_report(run_context, sent, None)


def tune_trial(params: dict[str, Any], *, base: dict[str, Any], spec: dict[str, Any],
               sweep_path: str, schedule: dict[str, Any], keys: Sequence[str],
               reuse: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """One model trial: its Train run, reporting ``keys`` to Tune at ``schedule``'s rungs
    (``trainables.loop.Schedule``); a config ``reuse`` holds (an earlier sweep finished it)
    reports that result instead."""
    from trainables.trial import make_trainer

    cfg = _config(params, base, spec)
    trial_id = ray.tune.get_context().get_trial_id()
    if _answered(sweep_path, trial_id, cfg, reuse):
        return
    run_dir = train_run_dir(sweep_path, trial_id)
    failed = read_failure(run_dir)
    if failed is not None:  # a permanent fault: a retry would fail the same way
        raise RuntimeError(failed)
    storage, _, name = run_dir.rpartition("/")
    trainer = make_trainer(cfg, storage_path=storage, name=name,
                           callbacks=[ObjectiveReportCallback(keys)], schedule=schedule)
    try:
        trainer.fit()
    except TrainingFailedError as exc:
        cause = root_cause(exc)
        if is_storage_full(exc) or is_storage_full(cause):
            # not the trial's fault: the driver stops the sweep (search.results.ResultsWriter)
            raise StorageFullError(cause) from None
        if is_permanent(cause):
            write_failure(run_dir, cause)
        raise RuntimeError(cause) from None
    except Exception as exc:  # Train's controller writing its state, say
        if is_storage_full(exc):
            raise StorageFullError(f"{type(exc).__name__}: {exc}"[:2000]) from None
        raise


def _config(params: dict[str, Any], base: dict[str, Any], spec: dict[str, Any]) -> TrialConfig:
    """The full trial config of Tune's suggestion ``params``."""
    return suggested_config(TrialConfig.from_dict(base), params, SpaceSpec.from_dict(spec))


def _answered(sweep_path: str, trial_id: str, cfg: TrialConfig,
              reuse: Mapping[str, Mapping[str, Any]] | None) -> bool:
    """Report a result the sweep (or, in ``reuse``, an earlier sweep it was warm-started
    from) already has, if there is one; then nothing is trained."""
    config_hash = cfg.config_hash()
    own, ran = results.lookup(sweep_path, trial_id, config_hash)
    if own is not None:
        # recorded before the driver died, after Tune's last snapshot: replay, train nothing
        if own["status"] == "error":
            raise RuntimeError(own["error"] or "trial failed before the sweep was resumed")
        ray.tune.report({**results.reported_metrics(own), "replayed": True})
        return True
    if ran is not None:
        # the same config already ran in this sweep (finished, or stopped at a rung): report
        # its last result, train nothing
        ray.tune.report({**ran, "duplicate_of": ran.get("trial_id", "")})
        return True
    earlier = (reuse or {}).get(config_hash)
    if earlier is not None:  # finished in an earlier sweep: its result, recorded as this one's
        ray.tune.report(dict(earlier))
        return True
    return False


def surrogate_trial(params: dict[str, Any], *, base: dict[str, Any], spec: dict[str, Any],
                    sweep_path: str, rungs: Sequence[int], two_phase: bool,
                    seconds_per_step: float, reports: int = 1,
                    reuse: Mapping[str, Mapping[str, Any]] | None = None) -> None:
    """A trial without a model (``search.trainable: surrogate``): the known function of
    ``trainables.surrogate`` with a model trial's two phases and reports.

    It reports, with ``spaces.objective.budget`` as ``BUDGET_KEY``, at each of the sweep's
    ``rungs`` below its own total budget (a target probe where the rung falls in phase 2),
    at ``reports`` evenly spaced points of phase 3 (the last one its end) and at its end.
    Without ``two_phase`` the budget and ``rungs`` count phase-3 steps, and phase 2 runs
    without a report. It lasts ``seconds_per_step`` per step it runs, phase 2 included, so
    a trial stopped early costs less time.
    """
    from trainables.surrogate import surrogate_curve, surrogate_phases, surrogate_progress

    cfg = _config(params, base, spec)
    if _answered(sweep_path, ray.tune.get_context().get_trial_id(), cfg, reuse):
        return
    keys = tune_keys("multi", cfg.objective_ece)  # the score and both terms
    steps_2, steps_3 = surrogate_phases(cfg)
    total = budget(steps_2, steps_3, two_phase=two_phase)
    phase_3 = budget(steps_2, 0, two_phase=two_phase)  # the budget where phase 3 starts
    points = {r for r in rungs if r < total} | {total}
    points |= {phase_3 + math.ceil(k * steps_3 / reports) for k in range(1, reports)}
    start = time.monotonic()
    for at in sorted(points):
        # report on schedule: a report waits for the driver to take it, and that wait
        # belongs to the trial's time, as a real trial's training goes on meanwhile
        ran = sum(surrogate_progress(cfg, at, two_phase=two_phase))
        time.sleep(max(0.0, start + ran * seconds_per_step - time.monotonic()))
        report = tune_report({**surrogate_curve(cfg, at, two_phase=two_phase),
                              BUDGET_KEY: at, DONE_KEY: at == total}, keys)
        if at == total:
            # Tune ends the trial at its last report instead of asking the function for one
            # more result (a round trip to the actor per trial)
            report["done"] = True
        ray.tune.report(report)


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
