"""Run one trial as a Ray Train ``TorchTrainer``."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import ray.train
from ray.train.torch import TorchTrainer

from spaces.config import TrialConfig
from spaces.models import get_model_size
from spaces.packing import gpu_share
from trainables.loop import train_loop_per_worker
from trainables.storage import run_filesystem

#: "1": a trial's workers select nodes labelled with their model size (cluster.yaml's node
#: types carry ``xstilts/model-size``); off by default, local nodes have no labels
NODE_LABELS_ENV = "XSTILTS_NODE_LABELS"
NODE_LABEL = "xstilts/model-size"


def make_trainer(config: TrialConfig, *, storage_path: str, name: str,
                 resume_from: ray.train.Checkpoint | None = None,
                 callbacks: Sequence[ray.train.UserCallback] = (),
                 schedule: Mapping[str, Any] | None = None,
                 keep_checkpoints: int | None = 1, max_failures: int = 0) -> TorchTrainer:
    """A trainer for ``config``; a deterministic ``name`` lets a re-run find its checkpoints.

    ``resume_from`` starts from a checkpoint of an earlier run of the same config; a
    run that restarts (same ``name`` and storage) continues from its own latest one.
    ``schedule``: when to report (``trainables.loop.Schedule``: a sweep's rungs); none:
    at the end (and every ``eval_every`` phase-3 steps). ``keep_checkpoints``: Train keeps
    the newest one only, the one the trial goes on from (optimizer state and all).
    """
    size = get_model_size(config.model_size)
    fs, path = run_filesystem(storage_path)  # local folders: every file written atomically
    resources = {"CPU": size.cpu_per_worker}
    if config.use_gpu:
        resources["GPU"] = gpu_share(config, size.name)  # trials pack by model size
    return TorchTrainer(
        train_loop_per_worker,
        # Train V2 has no resume_from_checkpoint: the loop takes the path (ray#49454)
        train_loop_config={"trial": config.to_dict(),
                           "resume_from": resume_from.path if resume_from else None,
                           "schedule": dict(schedule or {})},
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.num_workers, use_gpu=config.use_gpu,
            resources_per_worker=resources,
            label_selector={NODE_LABEL: size.name}
            if os.environ.get(NODE_LABELS_ENV) == "1" else None),
        run_config=ray.train.RunConfig(
            name=name, storage_path=path, storage_filesystem=fs, callbacks=list(callbacks),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=keep_checkpoints),
            failure_config=ray.train.FailureConfig(max_failures=max_failures)),
    )


def run_trial(config: TrialConfig, **kwargs) -> ray.train.Result:
    """Train and score one trial; returns Ray Train's ``Result`` (metrics of the last report)."""
    return make_trainer(config, **kwargs).fit()
