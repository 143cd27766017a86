"""The target probe: what a trial's encoder is worth to the target, mid phase 2.

At a rung that falls in phase 2, ASHA needs a score on the same scale for every
trial, and the encoder has not seen the target yet. The probe fine-tunes the
encoder and the target head for ``probe_steps`` steps on the first
``probe_examples`` English target training examples (a fixed subset, in a fixed
order: the same for every trial of a sweep), then scores it zero-shot like the
real evaluation (``trainables.evaluation``) on the first ``probe_eval_examples``
of every language, with the temperature fitted on as many English dev
examples. Afterwards the trial's own state is put back bit for bit: the model's
weights (kept on the host meanwhile, so the GPU holds one copy of the model),
the RNG streams, the data cursors and the sampler are untouched, so a trial
trains the same with or without probes.

Why this probe (over e.g. a linear probe on frozen features): it measures what
the objective measures — how well the encoder *fine-tunes* on English and
transfers — through the same head, loss, temperature fit and ECE; its cost is
``probe_steps`` target steps plus a small evaluation, a few percent of a
rung's budget at the paper's scale (100 steps against 4,000-step rungs).

Retrieval targets (BUCC, Tatoeba) train nothing: the probe scores the encoder
as it is, on the probe's evaluation subsets.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from spaces.config import TrialConfig
from trainables.data import Cursor
from trainables.evaluation import evaluate
from trainables.step import TrainStep, make_optimizer


def target_probe(model: torch.nn.Module, core, data, cfg: TrialConfig, device: torch.device,
                 *, rank: int, world: int, lean: bool,
                 trial_optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """The probe's metrics (rank 0; ``{}`` on other ranks), the trial's state unchanged.

    Every rank takes part in the probe's training steps (they go through the DDP
    wrapper ``model``); rank 0 scores. On a GPU, the trial's own optimizer state
    (``trial_optimizer``) waits on the host meanwhile, so the probe's AdamW state takes
    its place instead of adding to it: the trial's GPU share holds one of each."""
    if data.target_train is None:
        return _scored(model, core, data, cfg, device, rank)
    with _parked(trial_optimizer, device):
        return _probe(model, core, data, cfg, device, rank=rank, world=world, lean=lean)


@contextlib.contextmanager
def _parked(opt: torch.optim.Optimizer | None, device: torch.device):
    """``opt``'s state tensors on the host for the duration (GPUs only)."""
    if opt is None or device.type != "cuda":
        yield
        return
    moved = []
    for state in opt.state.values():
        for key, value in state.items():
            if torch.is_tensor(value) and value.device.type == "cuda":
                state[key] = value.to("cpu")
                moved.append((state, key))
    torch.cuda.empty_cache()
    try:
        yield
    finally:
        for state, key in moved:
            state[key] = state[key].to(device)


def _probe(model, core, data, cfg: TrialConfig, device: torch.device, *, rank: int, world: int,
           lean: bool) -> dict[str, Any]:
    target = data.target
    saved = {k: v.detach().to("cpu", copy=True) for k, v in core.state_dict().items()}
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    torch.manual_seed(cfg.seed)  # the same dropout for every probe of every trial
    try:
        split = data.target_train
        size = min(len(split), cfg.probe_examples)
        cursor = Cursor(f"probe:{target.name}", size, seed=cfg.seed, global_batch=cfg.batch_size,
                        lengths=split.lengths()[:size], group=cfg.group_by_length)
        params = [p for n, p in core.named_parameters()
                  if n.startswith("encoder.") or n.startswith(f"heads.{target.name}.")]
        opt, sched = make_optimizer(params, cfg, cfg.probe_steps, device)
        steps = TrainStep(model, core, device, lean=lean)
        model.train()
        for n in range(1, cfg.probe_steps + 1):
            steps(target.name, steps.batch(split, cursor.next(rank, world)), opt, sched, n, n)
        steps.flush()  # raises on a non-finite probe loss, as training does
        del opt, sched
        return _scored(model, core, data, cfg, device, rank)
    finally:
        core.load_state_dict(saved)  # in place: DDP and the trial's optimizer keep their tensors
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, device)
        model.train()


def _scored(model, core, data, cfg: TrialConfig, device: torch.device,
            rank: int) -> dict[str, Any]:
    if rank != 0:
        return {}
    model.eval()
    try:
        return evaluate(core, data.target, data.probe_sets, data.probe_dev, cfg, device,
                        fit_sets=data.fit_sets)
    finally:
        model.train()
