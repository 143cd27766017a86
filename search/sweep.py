"""Run a sweep: Ray Tune + Optuna (+ ASHA) over the space, results to Parquet."""

from __future__ import annotations

import os
from dataclasses import dataclass

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter

from search.results import ResultsWriter, filesystem
from search.searcher import STEP_KEY, make_searcher
from search.trainable import tune_trial
from spaces.config import TrialConfig
from spaces.sweep import SweepConfig

@dataclass(frozen=True)
class SweepPlan:
    """Everything a sweep needs, validated before anything starts."""

    storage: str
    name: str
    base: TrialConfig
    sweep: SweepConfig

    @property
    def path(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"


def check_storage(storage: str) -> None:
    """Fail before launch if the storage cannot be written."""
    fs, path = filesystem(storage)
    probe = f"{path.rstrip('/')}/.xstilts-write-check"
    try:
        fs.create_dir(path, recursive=True)
        with fs.open_output_stream(probe) as f:
            f.write(b"ok")
        fs.delete_file(probe)
    except (OSError, PermissionError) as exc:
        raise PermissionError(
            f"storage {storage!r} is not writable ({exc}); give a folder or URI this machine "
            "(and every node of a cluster) can write to") from None


@dataclass
class SweepOutcome:
    results: tune.ResultGrid
    #: the Optuna study the sweep's sampler learned from (finished, pruned, failed trials)
    study: optuna.Study


def run_sweep(plan: SweepPlan) -> SweepOutcome:
    """Run (or extend) the sweep at ``plan.path`` until its trial budget is spent."""
    check_storage(plan.storage)
    sweep = plan.sweep
    optuna_search = make_searcher(sweep)
    searcher = ConcurrencyLimiter(optuna_search, max_concurrent=sweep.concurrency)
    if sweep.asha_grace > 0:
        scheduler = ASHAScheduler(time_attr=STEP_KEY, metric="score", mode="max",
                                  grace_period=sweep.asha_grace,
                                  reduction_factor=sweep.asha_reduction, max_t=10**9)
    else:
        scheduler = FIFOScheduler()
    trainable = tune.with_parameters(tune_trial, base=plan.base.to_dict(),
                                     spec=sweep.space.to_dict(), sweep_path=plan.path)
    # The Tune trial only drives its TorchTrainer; the Train workers hold the CPUs/GPUs.
    # Ray refuses an all-zero request, so the driver asks for a token 1 MiB of memory.
    trainable = tune.with_resources(trainable, {"CPU": 0, "memory": 2**20})
    writer = ResultsWriter(plan.path, sweep=plan.name, base=plan.base, spec=sweep.space)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                    num_samples=sweep.trials, reuse_actors=False),
        run_config=tune.RunConfig(
            name=plan.name, storage_path=plan.storage, callbacks=[writer],
            verbose=int(os.environ.get("XSTILTS_TUNE_VERBOSE", "0")),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
    )
    results = tuner.fit()
    return SweepOutcome(results=results, study=optuna_search.study)

