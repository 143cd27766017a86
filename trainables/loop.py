"""One trial, per Ray Train worker: intermediate tasks, target, zero-shot scoring.

    phase 2  multi-task training on the English intermediate tasks; the mixing
             sampler draws each batch's task; checkpoint + report at the end
    phase 3  fine-tuning on the target's English training set with a fresh
             optimizer; every ``eval_every`` steps and at the end: evaluate
             zero-shot in every language, checkpoint, report
    resume   from ``ray.train.get_checkpoint()``: a finished phase 2 is never
             redone; phase 3 continues at its step with its optimizer state
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import tempfile
from typing import Any

import numpy as np
import pyarrow.fs as pafs
import ray.train
import ray.train.torch
import torch

from spaces.config import TrialConfig
from spaces.models import get_model_size
from spaces.tasks import get_task
from trainables import chaos
from trainables.data import Cursor
from trainables.embedded import resolve_checkpoint
from trainables.evaluation import evaluate
from trainables.gpu_memory import claim_gpu
from trainables.mixing import TaskSampler, task_probabilities
from trainables.retry import retry_transient
from trainables.trial_data import load_trial_data
from trainables.model import MultiTaskModel
from trainables.step import TrainStep, attention_implementation, make_optimizer

log = logging.getLogger("xstilts.trial")
STATE_FILE = "state.pt"
META_FILE = "meta.json"  # the step of a checkpoint, readable without loading it


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """``config``: {"trial": TrialConfig.to_dict(), "resume_from": checkpoint path or None}."""
    cfg = TrialConfig.from_dict(config["trial"])
    _quiet_libraries()
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    if cfg.batch_size < world:
        raise ValueError(f"batch_size={cfg.batch_size} is smaller than num_workers={world}; "
                         "raise batch_size or lower num_workers")

    from transformers import AutoModel, AutoTokenizer

    path = resolve_checkpoint(get_model_size(cfg.model_size).checkpoint)
    tokenizer = retry_transient(lambda: AutoTokenizer.from_pretrained(path), what=f"tokenizer {path}")
    data = load_trial_data(cfg, tokenizer, scoring=rank == 0)  # memory-mapped token cache
    # a packed trial fits its share of the GPU at the batch shapes its data can make
    claim_gpu(cfg, device, data.batch_shapes())
    torch.manual_seed(cfg.seed)  # same initial heads on every rank
    encoder = retry_transient(lambda: AutoModel.from_pretrained(
        path, add_pooling_layer=False, attn_implementation=attention_implementation(cfg.train_step)),
        what=f"model {path}")
    target, inter_train, target_train = data.target, data.inter_train, data.target_train
    trains_target = target_train is not None
    model = MultiTaskModel(encoder, [get_task(n) for n in inter_train] + [target],
                           num_labels=data.num_labels)

    probs = task_probabilities(cfg.mixing, sizes={n: len(d) for n, d in inter_train.items()},
                               logits=cfg.mixing_logits(), temperature=cfg.mixing_temperature,
                               cap=cfg.examples_cap) if inter_train else {}
    sampler = TaskSampler(probs, seed=cfg.seed)
    cursors = {n: Cursor(n, len(d), seed=cfg.seed, global_batch=cfg.batch_size,
                         lengths=d.lengths(), group=cfg.group_by_length)
               for n, d in inter_train.items()}
    steps_3 = 0
    if target_train is not None:
        cursors[target.name] = Cursor(target.name, len(target_train), seed=cfg.seed,
                                      global_batch=cfg.batch_size,
                                      lengths=target_train.lengths(), group=cfg.group_by_length)
        steps_3 = math.ceil(cfg.target_epochs * math.ceil(len(target_train) / cfg.batch_size))

    ckpt = _newest_checkpoint(ray.train.get_checkpoint())  # this run's own, after a restart
    if ckpt is None and config.get("resume_from"):
        ckpt = ray.train.Checkpoint(config["resume_from"])
    try:
        state = _restore(ckpt, cfg, model, sampler, cursors)
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError):
        # an unregistered checkpoint cut short by the kill: fall back to the registered one
        ckpt = ray.train.get_checkpoint()
        state = _restore(ckpt, cfg, model, sampler, cursors)
    run = ctx.get_experiment_name()
    if rank == 0:
        chaos.ledger(run, "start", config_hash=cfg.config_hash(), phase=state["phase"],
                     from_step=state["global_step"], phase_step=state["phase_step"],
                     node=ray.get_runtime_context().get_node_id())
    torch.manual_seed(cfg.seed * 1000 + rank + 7919 * state["global_step"])  # dropout streams
    if state.get("torch_rng") is not None and rank == 0:
        torch.set_rng_state(state["torch_rng"])
    if cfg.compile:
        model.encoder.compile(dynamic=False)  # one graph per shape bucket
    model = ray.train.torch.prepare_model(
        model, parallel_strategy_kwargs={"find_unused_parameters": True})
    core: MultiTaskModel = model.module if hasattr(model, "module") else model
    steps = TrainStep(model, core, device, lean=cfg.train_step == "lean")

    def faults(phase: str) -> None:
        """Chaos faults of ``phase`` (rank 0): raised before a step, or a NaN loss."""
        def before(n: int) -> None:
            fault = chaos.fault_for(run, phase, n) if rank == 0 else None
            if fault and fault != "nan":
                chaos.inject(fault, f"{run} {phase} step {n}")

        def corrupt(loss: torch.Tensor, n: int) -> torch.Tensor:
            nan = rank == 0 and chaos.fault_for(run, phase, n) == "nan"
            return loss * float("nan") if nan else loss

        steps.before, steps.corrupt = before, corrupt

    def train(phase: str, task: str, split, opt, sched, n: int, total: int,
              losses: list[float]) -> None:
        value = steps(task, steps.batch(split, cursors[task].next(rank, world)), opt, sched,
                      n, state["global_step"])
        state["global_step"] += 1
        if value is not None:
            losses.append(value)
        if _due(n, total):
            losses.extend(steps.flush())
            _progress(rank, phase, n, total, losses, steps)

    # -- phase 2: multi-task intermediate training ---------------------------------------
    ran_2 = 0
    metrics: dict[str, Any] = {}
    if state["phase"] == "intermediate":
        params = [p for n, p in core.named_parameters() if not n.startswith(f"heads.{target.name}.")]
        opt, sched = make_optimizer(params, cfg, cfg.intermediate_steps, device)
        losses: list[float] = []
        model.train()
        faults("intermediate")
        for s in range(cfg.intermediate_steps):
            task = sampler.draw()
            train("intermediate", task, inter_train[task], opt, sched, s + 1,
                  cfg.intermediate_steps, losses)
            ran_2 += 1
        losses.extend(steps.flush())
        state.update(phase="target", phase_step=0)
        metrics = {"phase": "intermediate", "intermediate_loss": _mean(losses),
                   **steps.throughput()}
        if trains_target:  # a retrieval target reports once, with its scores, below
            _report(rank, cfg, core, state, sampler, cursors, None, None, metrics, ran_2)

    # -- retrieval targets: no target training, the encoder phase 2 left is scored -------
    if not trains_target:
        if state.get("metrics"):  # a run killed after its report: report it again
            ray.train.report(state["metrics"])
        else:
            final = {"phase": "target", "target_step": 0, "target_steps": 0, "finished": True,
                     "intermediate_loss": metrics["intermediate_loss"] if ran_2 else float("nan")}
            if rank == 0:
                model.eval()
                final.update(evaluate(core, target, data.eval_sets, None, cfg, device))
            _report(rank, cfg, core, state, sampler, cursors, None, None, final, ran_2)
        if rank == 0:
            chaos.ledger(run, "end", step=state["global_step"])
        return

    # -- phase 3: English target fine-tuning + zero-shot evaluation ---------------------
    params = [p for n, p in core.named_parameters()
              if n.startswith("encoder.") or n.startswith(f"heads.{target.name}.")]
    opt, sched = make_optimizer(params, cfg, steps_3, device)
    if state.get("optimizer") is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    if state["phase_step"] >= steps_3 and state.get("metrics"):
        # a run killed after its last report: report the final metrics again
        ray.train.report(state["metrics"])
        if rank == 0:
            chaos.ledger(run, "end", step=state["global_step"], trained_steps=0)
        return
    losses = []
    model.train()
    faults("target")
    while state["phase_step"] < steps_3:
        train("target", target.name, target_train, opt, sched, state["phase_step"] + 1, steps_3, losses)
        state["phase_step"] += 1
        at_end = state["phase_step"] == steps_3
        if at_end or (cfg.eval_every and state["phase_step"] % cfg.eval_every == 0):
            losses.extend(steps.flush())
            metrics = {"phase": "target", "target_loss": _mean(losses),
                       "target_step": state["phase_step"], "target_steps": steps_3,
                       "finished": at_end, **steps.throughput()}
            if rank == 0:
                model.eval()
                metrics.update(evaluate(core, target, data.eval_sets, data.en_dev, cfg, device))
                model.train()
            _report(rank, cfg, core, state, sampler, cursors, opt, sched, metrics, ran_2)
            losses = []
    if rank == 0:
        chaos.ledger(run, "end", step=state["global_step"])


def _newest_checkpoint(registered):
    """The newest checkpoint of this run, registered by Ray Train or not.

    A worker uploads its checkpoint before the Train controller registers it; a
    driver killed in between leaves the run's snapshot one or more checkpoints
    behind, and a restart would train those steps again. Every checkpoint
    carries its step in ``META_FILE``, so the newest one on storage wins.
    """
    try:
        storage = ray.train.get_context().get_storage()
        fs, run_dir = storage.storage_filesystem, storage.experiment_fs_path
        infos = fs.get_file_info(pafs.FileSelector(run_dir, allow_not_found=True))
    except (AttributeError, OSError):
        return registered

    def step_of(fs_, path: str) -> int:
        try:
            with fs_.open_input_stream(f"{path}/{META_FILE}") as f:
                return int(json.loads(f.read())["global_step"])
        except (OSError, ValueError, KeyError):
            return -1

    best = registered
    best_step = step_of(registered.filesystem, registered.path) if registered else -1
    for info in infos:
        if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_"):
            step = step_of(fs, info.path)
            if step > best_step and fs.get_file_info(f"{info.path}/{STATE_FILE}").size:
                best, best_step = ray.train.Checkpoint(info.path, filesystem=fs), step
    return best


def _restore(ckpt, cfg: TrialConfig, model, sampler, cursors) -> dict[str, Any]:
    if ckpt is None:
        return {"phase": "intermediate" if cfg.intermediate_steps else "target",
                "phase_step": 0, "global_step": 0}
    with ckpt.as_directory() as d:
        saved = torch.load(os.path.join(d, STATE_FILE), map_location="cpu", weights_only=False)
    if saved["config_hash"] != cfg.config_hash():
        raise ValueError(
            f"checkpoint {ckpt.path} was written by config {saved['config_hash']}, not this "
            f"trial's {cfg.config_hash()}; resume with the same config or start a new run")
    model.load_state_dict(saved.pop("model"))
    sampler.load_state_dict(saved.pop("sampler"))
    for name, c in saved.pop("cursors").items():
        cursors[name].load_state_dict(c)
    log.info("resumed at step %d (phase %s)", saved["global_step"], saved["phase"])
    return saved


def _report(rank: int, cfg: TrialConfig, core, state, sampler, cursors, opt, sched,
            metrics: dict[str, Any], ran_2: int) -> None:
    metrics = {**metrics, "step": state["global_step"], "intermediate_steps_run": ran_2}
    if rank != 0:
        ray.train.report(metrics)
        return
    saved = {
        "config_hash": cfg.config_hash(), "phase": state["phase"],
        "phase_step": state["phase_step"], "global_step": state["global_step"],
        "model": core.state_dict(), "sampler": sampler.state_dict(),
        "cursors": {n: c.state_dict() for n, c in cursors.items()},
        "optimizer": opt.state_dict() if opt else None, "scheduler": sched.state_dict() if sched else None,
        "torch_rng": torch.get_rng_state(), "metrics": metrics,
    }
    with tempfile.TemporaryDirectory() as d:
        torch.save(saved, os.path.join(d, STATE_FILE))
        with open(os.path.join(d, META_FILE), "w") as f:
            json.dump({"global_step": state["global_step"], "config_hash": cfg.config_hash()}, f)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))
    chaos.ledger(ray.train.get_context().get_experiment_name(), "checkpoint",
                 phase=state["phase"], phase_step=state["phase_step"])


def _due(done: int, total: int) -> bool:
    """Whether step ``done`` of ``total`` logs progress (five times a phase)."""
    every = max(1, total // 5)
    return done % every == 0 or done == total


def _progress(rank: int, phase: str, done: int, total: int, losses: list[float],
              steps: TrainStep) -> None:
    if rank == 0:
        every = max(1, total // 5)
        log.info("%s step %d/%d loss %.4f (%.0f real tokens/s, %.0f%% padding)", phase, done,
                 total, _mean(losses[-every:]), steps.throughput()["train_tokens_per_s"],
                 100 * steps.throughput()["train_pad_fraction"])


def _mean(xs: list[float]) -> float:
    return float(np.mean(xs)) if xs else float("nan")


def _quiet_libraries() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # per-report INFO lines drown progress
    try:  # Train V2 logs every report, all its metrics, under a logger named by its file path
        from ray.train.v2._internal.execution import context as train_context

        logging.getLogger(train_context.__file__).setLevel(logging.WARNING)
    except ImportError:
        pass
    hf_logging.disable_progress_bar()
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[xstilts] %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
