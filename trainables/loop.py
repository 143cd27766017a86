"""One trial, per Ray Train worker: intermediate tasks, target, zero-shot scoring.

Three stages, each a function of one ``Run`` (what the worker holds) and its
``TrialState`` (what a checkpoint restores):

    intermediate_training   phase 2: multi-task training on the English intermediate
                            tasks; the mixing sampler draws each batch's task. At a
                            rung (``Schedule``) that falls in phase 2: the target probe
                            (``trainables.probe``), a report and a checkpoint with the
                            phase's optimizer state; a checkpoint at its end
    retrieval_scoring       BUCC, Tatoeba: the encoder phase 2 left is scored, reported
    target_training         phase 3: fine-tuning on the target's English training set
                            with a fresh optimizer; at rungs, every ``eval_every`` steps
                            (when set) and at the end: zero-shot evaluation in every
                            language, report, checkpoint

The budget a report carries (``spaces.objective.budget``) counts phase-2 and
phase-3 steps, so ASHA can stop a trial in either phase. A checkpoint holds the
optimizer state only while the trial can go on from it (Train keeps the latest
one); the last one holds the model's weights only (bf16 where trained in bf16)
and the final metrics, which a run restarted after its end reports again. Every
report that scores writes its full metrics (per language) beside the run before it
reports, one file per budget (``details_file``): Tune is sent only ``TUNE_KEYS``.
Checkpoints are read with ``torch.load(weights_only=True)``: a checkpoint
carrying anything but tensors and plain values is refused, it cannot run code.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pickle
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pyarrow.fs as pafs
import ray.train
import ray.train.torch
import torch

from spaces.config import TrialConfig
from spaces.models import get_model_size
from spaces.objective import BUDGET_KEY, DONE_KEY, SCORE_KEY, budget
from spaces.tasks import get_task
from trainables import chaos
from trainables.data import Cursor
from trainables.embedded_default import resolve_checkpoint
from trainables.evaluation import evaluate
from trainables.gpu_memory import claim_gpu
from trainables.mixing import TaskSampler, task_probabilities
from trainables.model import MultiTaskModel
from trainables.probe import target_probe
from trainables.retry import retry_transient
from trainables.step import TrainStep, attention_implementation, make_optimizer
from trainables.trial_data import TrialData, load_trial_data

log = logging.getLogger("xstilts.trial")
STATE_FILE = "state.pt"
META_FILE = "meta.json"  # the step of a checkpoint, readable without loading it


def upload_mode(done: bool) -> ray.train.CheckpointUploadMode:
    """How a report's checkpoint goes to storage. While the trial trains on, in the
    background (``ASYNC``): serialising to local disk stalls training, the copy to storage
    (S3: minutes for XLM-R large's 6.7 GB with AdamW's state) does not. A finished trial's
    last one before its run ends (``SYNC``, after the queued ones): nothing is left to
    overlap, and a run whose end is logged has its result on storage."""
    return ray.train.CheckpointUploadMode.SYNC if done else ray.train.CheckpointUploadMode.ASYNC


def details_file(budget: int) -> str:
    """The file, beside a trial's Train run, holding the full metrics of its scored report
    at ``budget`` (JSON). One per budget: a worker that goes on training after a report
    ASHA stops writes its next evaluation beside it, not over it."""
    return f"xstilts-details-{int(budget)}.json"


class UnsafeCheckpointError(ValueError):
    """A checkpoint holding objects other than tensors and plain values."""


@dataclass(frozen=True)
class Schedule:
    """When a trial reports to the sweep: the budgets of ASHA's rungs below the trial's
    end (``SweepConfig.rungs``), and whether phase 2 counts (``search.two_phase``)."""

    rungs: tuple[int, ...] = ()
    two_phase: bool = True

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Schedule":
        data = data or {}
        return cls(rungs=tuple(int(r) for r in data.get("rungs", ())),
                   two_phase=bool(data.get("two_phase", True)))

    def to_dict(self) -> dict[str, Any]:
        return {"rungs": list(self.rungs), "two_phase": self.two_phase}


@dataclass
class TrialState:
    """Where a trial is; a checkpoint restores it with the model and the data positions."""

    #: ``intermediate``, ``target`` or ``done``
    phase: str
    intermediate_step: int = 0
    target_step: int = 0
    #: the final metrics, once ``done``: a run restarted after its end reports them again
    metrics: dict[str, Any] | None = None

    @property
    def global_step(self) -> int:
        return self.intermediate_step + self.target_step

    def phase_step(self) -> int:
        return self.intermediate_step if self.phase == "intermediate" else self.target_step

    def budget(self, schedule: Schedule) -> int:
        return budget(self.intermediate_step, self.target_step, two_phase=schedule.two_phase)


@dataclass
class Run:
    """What one worker holds for its trial."""

    cfg: TrialConfig
    schedule: Schedule
    data: TrialData
    model: torch.nn.Module  # what forwards go through: the DDP wrapper, or the model
    core: MultiTaskModel
    steps: TrainStep
    sampler: TaskSampler
    cursors: dict[str, Cursor]
    state: TrialState
    device: torch.device
    rank: int
    world: int
    name: str
    #: the checkpoint's optimizer and scheduler states, until the phase takes them
    saved_optimizer: dict[str, Any] | None = None
    #: steps this run trained, phase-2 steps of them (0 when it resumed past phase 2),
    #: and their mean loss
    trained: int = 0
    ran_2: int = 0
    phase2_loss: float = float("nan")
    losses: list[float] = field(default_factory=list)

    @property
    def target(self):
        return self.data.target

    def evaluation(self) -> dict[str, Any]:
        """The zero-shot evaluation of the model as it is (rank 0; ``{}`` elsewhere)."""
        if self.rank != 0:
            return {}
        self.model.eval()
        try:
            return evaluate(self.core, self.target, self.data.eval_sets, self.data.en_dev,
                            self.cfg, self.device, fit_sets=self.data.fit_sets,
                            ood_sets=self.data.ood_sets)
        finally:
            self.model.train()


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """``config``: {"trial": TrialConfig.to_dict(), "resume_from": checkpoint path or None,
    "schedule": Schedule.to_dict() (a sweep's rungs; none: report at the end only)}."""
    run = _start(config)
    if run.state.phase == "intermediate":
        intermediate_training(run)
    if run.data.target_train is None:
        retrieval_scoring(run)
    else:
        target_training(run)
    if run.rank == 0:  # trained_steps 0: a run restarted after its end only reported again
        chaos.ledger(run.name, "end", step=run.state.global_step, trained_steps=run.trained)


# -- the stages ------------------------------------------------------------------------------
def intermediate_training(run: Run) -> None:
    """Phase 2: multi-task training on the intermediate tasks, from where the state is.

    At each rung that falls in phase 2 (two-phase schedules), the target probe scores the
    encoder for ASHA and a checkpoint keeps the phase's optimizer state: a trial lost mid
    phase 2 goes on from its last rung."""
    cfg, st, target = run.cfg, run.state, run.target
    params = [p for n, p in run.core.named_parameters() if not n.startswith(f"heads.{target.name}.")]
    opt, sched = make_optimizer(params, cfg, cfg.intermediate_steps, run.device)
    _load_optimizer(run, opt, sched)
    trains_target = run.data.target_train is not None
    probing = run.schedule.two_phase and (cfg.probe_steps > 0 or not trains_target)
    rungs = set(run.schedule.rungs) if probing else set()
    _faults(run, "intermediate")
    run.model.train()
    run.losses = []
    while st.intermediate_step < cfg.intermediate_steps:
        task = run.sampler.draw()
        _train(run, "intermediate", task, run.data.inter_train[task], opt, sched,
               st.intermediate_step + 1, cfg.intermediate_steps)
        st.intermediate_step += 1
        run.ran_2 += 1
        last = st.intermediate_step == cfg.intermediate_steps
        if st.budget(run.schedule) in rungs and not (last and not trains_target):
            run.losses.extend(run.steps.flush())
            if last:  # the rung is phase 2's end: its checkpoint goes on in phase 3
                st.phase = "target"
            probe = target_probe(run.model, run.core, run.data, cfg, run.device, rank=run.rank,
                                 world=run.world, lean=cfg.train_step == "lean",
                                 trial_optimizer=opt)
            _report(run, {"phase": "intermediate", "probe": True, DONE_KEY: False,
                          "intermediate_loss": _mean(run.losses), **probe},
                    opt=None if last else opt, sched=None if last else sched)
    run.losses.extend(run.steps.flush())
    run.phase2_loss = _mean(run.losses)
    if st.phase == "intermediate":
        st.phase = "target"
        if trains_target:  # a retrieval target reports once, with its scores
            _report(run, {"phase": "intermediate", "intermediate_loss": run.phase2_loss,
                          **run.steps.throughput()})


def retrieval_scoring(run: Run) -> None:
    """BUCC, Tatoeba: no target training; the encoder phase 2 left is scored, reported."""
    st = run.state
    if st.phase == "done":  # a run restarted after its report: report it again
        ray.train.report(st.metrics)
        return
    final = {"phase": "target", "target_step": 0, "target_steps": 0, DONE_KEY: True,
             "intermediate_loss": run.phase2_loss, **run.evaluation()}
    st.phase = "done"
    _report(run, final)


def target_training(run: Run) -> None:
    """Phase 3: the target's English training set with a fresh optimizer (or the one a
    checkpoint holds); evaluation, report and checkpoint at rungs, every ``eval_every``
    steps when set, and at the end."""
    cfg, st, target = run.cfg, run.state, run.target
    total = math.ceil(cfg.target_epochs * math.ceil(len(run.data.target_train) / cfg.batch_size))
    if st.phase == "done":  # a run restarted after its last report: report it again
        ray.train.report(st.metrics)
        return
    params = [p for n, p in run.core.named_parameters()
              if n.startswith("encoder.") or n.startswith(f"heads.{target.name}.")]
    opt, sched = make_optimizer(params, cfg, total, run.device)
    _load_optimizer(run, opt, sched)
    rungs = set(run.schedule.rungs)
    _faults(run, "target")
    run.model.train()
    run.losses = []
    while st.target_step < total:
        _train(run, "target", target.name, run.data.target_train, opt, sched, st.target_step + 1,
               total)
        st.target_step += 1
        at_end = st.target_step == total
        if (at_end or st.budget(run.schedule) in rungs
                or (cfg.eval_every and st.target_step % cfg.eval_every == 0)):
            run.losses.extend(run.steps.flush())
            metrics = {"phase": "target", "target_loss": _mean(run.losses),
                       "target_step": st.target_step, "target_steps": total, DONE_KEY: at_end,
                       **run.steps.throughput(), **run.evaluation()}
            if at_end:
                st.phase = "done"
            _report(run, metrics, opt=None if at_end else opt, sched=None if at_end else sched)
            run.losses = []


# -- setting up, training, reporting -------------------------------------------------------
def _start(config: dict[str, Any]) -> Run:
    """The worker's trial: data, model, sampler, cursors, restored from its newest
    checkpoint where it has one."""
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
    target = data.target
    model = MultiTaskModel(encoder, [get_task(n) for n in data.inter_train] + [target],
                           num_labels=data.num_labels)
    probs = task_probabilities(cfg.mixing, sizes={n: len(d) for n, d in data.inter_train.items()},
                               logits=cfg.mixing_logits(), temperature=cfg.mixing_temperature,
                               cap=cfg.examples_cap) if data.inter_train else {}
    sampler = TaskSampler(probs, seed=cfg.seed)
    splits = {**data.inter_train,
              **({target.name: data.target_train} if data.target_train is not None else {})}
    cursors = {n: Cursor(n, len(d), seed=cfg.seed, global_batch=cfg.batch_size,
                         lengths=d.lengths(), group=cfg.group_by_length)
               for n, d in splits.items()}

    ckpt = _newest_checkpoint(ray.train.get_checkpoint())  # this run's own, after a restart
    if ckpt is None and config.get("resume_from"):
        ckpt = ray.train.Checkpoint(config["resume_from"])
    try:
        restored = _restore(ckpt, cfg, model, sampler, cursors)
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError):
        # an unregistered checkpoint cut short by the kill: fall back to the registered one
        restored = _restore(ray.train.get_checkpoint(), cfg, model, sampler, cursors)
    state, saved_optimizer, torch_rng = restored
    name = ctx.get_experiment_name()
    if rank == 0:
        chaos.ledger(name, "start", config_hash=cfg.config_hash(), phase=state.phase,
                     from_step=state.global_step, phase_step=state.phase_step(),
                     node=ray.get_runtime_context().get_node_id())
    torch.manual_seed(cfg.seed * 1000 + rank + 7919 * state.global_step)  # dropout streams
    if torch_rng is not None and rank == 0:
        torch.set_rng_state(torch_rng)
    if cfg.compile:
        model.encoder.compile(dynamic=False)  # one graph per shape bucket
    wrapped = ray.train.torch.prepare_model(
        model, parallel_strategy_kwargs={"find_unused_parameters": True})
    core: MultiTaskModel = wrapped.module if hasattr(wrapped, "module") else wrapped
    return Run(cfg=cfg, schedule=Schedule.from_dict(config.get("schedule")), data=data,
               model=wrapped, core=core, steps=TrainStep(wrapped, core, device,
                                                         lean=cfg.train_step == "lean"),
               sampler=sampler, cursors=cursors, state=state, device=device, rank=rank,
               world=world, name=name, saved_optimizer=saved_optimizer)


def _faults(run: Run, phase: str) -> None:
    """Chaos faults of ``phase`` (rank 0): raised before a step, or a NaN loss."""
    def before(n: int) -> None:
        fault = chaos.fault_for(run.name, phase, n) if run.rank == 0 else None
        if fault and fault != "nan":
            chaos.inject(fault, f"{run.name} {phase} step {n}")

    def corrupt(loss: torch.Tensor, n: int) -> torch.Tensor:
        nan = run.rank == 0 and chaos.fault_for(run.name, phase, n) == "nan"
        return loss * float("nan") if nan else loss

    run.steps.before, run.steps.corrupt = before, corrupt


def _train(run: Run, phase: str, task: str, split, opt, sched, n: int, total: int) -> None:
    """Step ``n`` of ``total`` of ``phase`` on a batch of ``task``."""
    value = run.steps(task, run.steps.batch(split, run.cursors[task].next(run.rank, run.world)),
                      opt, sched, n, run.state.global_step)
    run.trained += 1
    if value is not None:
        run.losses.append(value)
    if _due(n, total):
        run.losses.extend(run.steps.flush())
        _progress(run.rank, phase, n, total, run.losses, run.steps)


def _load_optimizer(run: Run, opt, sched) -> None:
    """Give the phase's optimizer and schedule the state the checkpoint held, once."""
    if run.saved_optimizer is not None:
        opt.load_state_dict(run.saved_optimizer["optimizer"])
        sched.load_state_dict(run.saved_optimizer["scheduler"])
        run.saved_optimizer = None


def _report(run: Run, metrics: dict[str, Any], *, opt=None, sched=None) -> None:
    """Report ``metrics`` with a checkpoint of the trial as it is now (rank 0).

    ``opt``/``sched``: the phase's optimizer, saved where the trial can go on from this
    checkpoint; a finished trial's checkpoint holds its weights (bf16 where trained in
    bf16) and its final metrics only."""
    st, cfg = run.state, run.cfg
    metrics = {**metrics, BUDGET_KEY: st.budget(run.schedule), "step": st.global_step,
               "intermediate_steps_run": run.ran_2}
    done = st.phase == "done"
    if done:
        st.metrics = metrics
    mode = upload_mode(done)
    if run.rank != 0:
        ray.train.report(metrics, checkpoint_upload_mode=mode)
        return
    if SCORE_KEY in metrics:
        _write_details(metrics, metrics[BUDGET_KEY])
    weights = run.core.state_dict()
    if done and run.device.type == "cuda":  # trained under bf16 autocast: bf16 is what it used
        weights = {k: v.to(torch.bfloat16) if v.is_floating_point() else v
                   for k, v in weights.items()}
    saved: dict[str, Any] = {"config_hash": cfg.config_hash(), "state": dataclasses.asdict(st),
                             "model": weights}
    if not done:
        saved.update(sampler=run.sampler.state_dict(),
                     cursors={n: c.state_dict() for n, c in run.cursors.items()},
                     torch_rng=torch.get_rng_state(),
                     optimizer=opt.state_dict() if opt else None,
                     scheduler=sched.state_dict() if sched else None)
    d = tempfile.mkdtemp(prefix="xstilts-checkpoint-")
    try:
        torch.save(saved, os.path.join(d, STATE_FILE))
        with open(os.path.join(d, META_FILE), "w") as f:
            json.dump({"global_step": st.global_step, "config_hash": cfg.config_hash(),
                       "phase": st.phase}, f)
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    ledger = {"phase": st.phase, "phase_step": st.phase_step()}

    def upload(checkpoint: ray.train.Checkpoint, dir_name: str) -> ray.train.Checkpoint:
        persisted = ray.train.get_context().get_storage().persist_current_checkpoint(
            checkpoint, dir_name)
        chaos.ledger(run.name, "checkpoint", **ledger)  # on storage: a restart finds it
        return persisted

    # ASYNC: Train uploads in its own thread and deletes the local copy once uploaded;
    # training goes on meanwhile, and the report reaches Tune when the upload is done
    try:
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d),
                         checkpoint_upload_fn=upload, checkpoint_upload_mode=mode)
    finally:
        if mode == ray.train.CheckpointUploadMode.SYNC:
            shutil.rmtree(d, ignore_errors=True)


def _write_details(metrics: Mapping[str, Any], budget: int) -> None:
    """The full metrics of a scored report, beside the run (``details_file``), before the
    report: the sweep's tables take per-language metrics from here, not from Tune."""
    try:
        storage = ray.train.get_context().get_storage()
        fs, run_dir = storage.storage_filesystem, storage.experiment_fs_path
    except AttributeError:  # no storage context (Ray Train changed): Tune's rows stand alone
        log.warning("no Train storage context: per-language metrics are not recorded")
        return
    body = json.dumps(metrics, sort_keys=True).encode()
    with fs.open_output_stream(f"{run_dir}/{details_file(budget)}") as f:
        f.write(body)


# -- checkpoints -----------------------------------------------------------------------------
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
        found = checkpoint_steps(fs, run_dir)
    except (AttributeError, OSError):
        return registered

    best = registered
    best_step = _step_of(registered.filesystem, registered.path) if registered else -1
    for step, path in found:
        if step > best_step and fs.get_file_info(f"{path}/{STATE_FILE}").size:
            best, best_step = ray.train.Checkpoint(path, filesystem=fs), step
    return best


def checkpoint_steps(fs: pafs.FileSystem, run_dir: str) -> list[tuple[int, str]]:
    """``(step, path)`` of every checkpoint folder of a Train run, oldest first; -1 for one
    whose ``META_FILE`` is missing or unreadable (cut short). Raises ``OSError`` where the
    run's folder cannot be listed."""
    infos = fs.get_file_info(pafs.FileSelector(run_dir, allow_not_found=True))
    return sorted((_step_of(fs, info.path), info.path) for info in infos
                  if info.type == pafs.FileType.Directory
                  and info.base_name.startswith("checkpoint_"))


def _step_of(fs: pafs.FileSystem, path: str) -> int:
    try:
        with fs.open_input_stream(f"{path}/{META_FILE}") as f:
            return int(json.loads(f.read())["global_step"])
    except (OSError, ValueError, KeyError):
        return -1


def load_checkpoint_file(path: str) -> dict[str, Any]:
    """A checkpoint's ``STATE_FILE``, unpickling nothing but tensors and plain values
    (``torch.load(weights_only=True)``; the RNG states are tensors and plain ints)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found is None:
            raise  # a file cut short: the caller falls back to an older checkpoint
        detail = f"a reference to {found.group(1)}"
        raise UnsafeCheckpointError(
            f"checkpoint {path} holds {detail}: an xstilts checkpoint holds only tensors and "
            "plain values, and loading anything else could run code, so it is refused; it "
            "was not written by xstilts or was changed since. Delete it (the trial then "
            "starts over) or resume from a checkpoint you trust") from None


def _restore(ckpt, cfg: TrialConfig, model, sampler, cursors
             ) -> tuple[TrialState, dict[str, Any] | None, torch.Tensor | None]:
    """The trial's state (and its optimizer's, and rank 0's RNG) from ``ckpt``, its model,
    sampler and cursors loaded; a fresh state without one."""
    if ckpt is None:
        return TrialState(phase="intermediate" if cfg.intermediate_steps else "target"), None, None
    with ckpt.as_directory() as d:
        saved = load_checkpoint_file(os.path.join(d, STATE_FILE))
    if saved["config_hash"] != cfg.config_hash():
        raise ValueError(
            f"checkpoint {ckpt.path} was written by config {saved['config_hash']}, not this "
            f"trial's {cfg.config_hash()}; resume with the same config or start a new run")
    model.load_state_dict(saved["model"])  # bf16 weights of a finished trial: cast back
    state = TrialState(**saved["state"]) if "state" in saved else _legacy_state(saved)
    if state.phase != "done":
        sampler.load_state_dict(saved["sampler"])
        for name, c in saved["cursors"].items():
            cursors[name].load_state_dict(c)
    optimizer = ({"optimizer": saved["optimizer"], "scheduler": saved["scheduler"]}
                 if saved.get("optimizer") is not None else None)
    log.info("resumed at step %d (phase %s)", state.global_step, state.phase)
    return state, optimizer, saved.get("torch_rng")


def _legacy_state(saved: Mapping[str, Any]) -> TrialState:
    """The state of a checkpoint written before ``TrialState`` (phase, phase_step and
    global_step at its top level; its optimizer was phase 3's)."""
    phase, step, total = saved["phase"], int(saved["phase_step"]), int(saved["global_step"])
    if phase == "intermediate":
        return TrialState(phase=phase, intermediate_step=step)
    metrics = saved.get("metrics")
    done = bool(metrics and metrics.get(DONE_KEY))
    return TrialState(phase="done" if done else "target", intermediate_step=total - step,
                      target_step=step, metrics=metrics if done else None)


# -- progress --------------------------------------------------------------------------------
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
