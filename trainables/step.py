"""The training step of a trial, in two forms that compute the same losses.

``plain``: the batch is padded on the host to its longest row and copied to the
device; attention is the encoder's eager implementation; the loss is read back
(one host sync) after every step to check it is finite.

``lean``: batches are gathered on the device from pre-tokenized Arrow columns
(``trainables.tokens``), padded to a shape bucket; attention runs through
PyTorch's SDPA; losses and real-token counts stay on the device and are read
back once per ``flush`` (progress lines and reports), so the host queues steps
ahead of the GPU instead of waiting for each. On CUDA both use bf16 autocast and
fused AdamW; ``compile`` wraps the encoder in ``torch.compile`` (one graph per
shape bucket).

Either way every step is: forward, loss in fp32, backward, gradient clipping
at 1.0 over what the phase trains, AdamW, learning-rate schedule.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Mapping

import numpy as np
import torch

from spaces.config import TrialConfig
from trainables.model import MultiTaskModel, task_loss


def attention_implementation(train_step: str) -> str:
    """The ``attn_implementation`` the encoder is loaded with for ``train_step``."""
    return "sdpa" if train_step == "lean" else "eager"


def make_optimizer(params, cfg: TrialConfig, total: int, device: torch.device):
    """AdamW (fused on CUDA; no decay on biases and norms) and its schedule over
    ``total`` steps: linear warm-up over ``warmup_ratio``, then linear decay to 0."""
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate, fused=device.type == "cuda")
    warm = int(cfg.warmup_ratio * total)

    def lr_lambda(s: int) -> float:  # linear warm-up, then linear decay to 0
        if s < warm:
            return (s + 1) / warm
        return max(0.0, (total - s) / max(1, total - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)


class TrainStep:
    """Runs steps of one phase and accounts for them.

    ``model`` is what the forward goes through (a DDP wrapper or the model
    itself), ``core`` the ``MultiTaskModel`` inside it. ``before(n)`` runs
    before step ``n`` of the phase (fault injection); ``corrupt(loss, n)`` may
    replace the loss of step ``n`` (a NaN fault).
    """

    def __init__(self, model: torch.nn.Module, core: MultiTaskModel, device: torch.device, *,
                 lean: bool, before: Callable[[int], None] | None = None,
                 corrupt: Callable[[torch.Tensor, int], torch.Tensor] | None = None):
        self.model, self.core, self.device, self.lean = model, core, device, lean
        self.before, self.corrupt = before, corrupt
        self.amp = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                    else contextlib.nullcontext())
        self._params: tuple[object, list[torch.nn.Parameter]] | None = None
        self._pending: list[tuple[int, str, torch.Tensor]] = []
        self._real = torch.zeros((), dtype=torch.long, device=device)
        self._slots = torch.zeros((), dtype=torch.long, device=device)
        #: totals over this object's life: real (unpadded) tokens, token slots, seconds
        self.real_tokens = 0
        self.token_slots = 0
        self.examples = 0
        self.seconds = 0.0
        self._since: float | None = None

    # -- batches ----------------------------------------------------------------------
    def batch(self, split, index: np.ndarray) -> dict[str, torch.Tensor]:
        """The batch of ``index`` on the device, built the way this step builds it."""
        if self.lean:
            return split.device_batch(index, self.device)
        return {k: v.to(self.device, non_blocking=True) for k, v in split.batch(index).items()}

    # -- one step ---------------------------------------------------------------------
    def __call__(self, task: str, batch: Mapping[str, torch.Tensor], opt, sched, n: int,
                 global_step: int) -> float | None:
        """Train on ``batch``; the loss as a float (plain), or None (lean: see ``flush``)."""
        if self._since is None:
            self._since = time.perf_counter()
        if self.before is not None:
            self.before(n)
        mask = batch["attention_mask"]
        with self.amp:
            logits = self.model(task, batch["input_ids"], mask)
        loss = task_loss(self.core.formats[task], logits, batch)
        if self.corrupt is not None:
            loss = self.corrupt(loss, n)
        value = None
        if not self.lean:  # the plain step reads every loss back before it is trained on
            value = loss.item()
            _check(value, task, global_step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        # clip what this phase trains: stale grads of other heads must not count
        torch.nn.utils.clip_grad_norm_(self._trained(opt), 1.0)
        opt.step()
        sched.step()
        self.examples += int(mask.shape[0])
        self._real += mask.sum()
        self._slots += mask.numel()
        if self.lean:
            self._pending.append((global_step, task, loss.detach()))
        return value

    def _trained(self, opt) -> list[torch.nn.Parameter]:
        """The parameters ``opt`` trains (listed once per optimizer, not per step)."""
        if self._params is None or self._params[0] is not opt:
            self._params = (opt, [p for g in opt.param_groups for p in g["params"]])
        return self._params[1]

    def flush(self) -> list[float]:
        """The losses of the steps since the last flush (one host sync); raises
        ``FloatingPointError`` naming the first step whose loss is not finite."""
        if self._since is not None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds += time.perf_counter() - self._since
            self._since = None
        self.real_tokens += int(self._real.item())
        self.token_slots += int(self._slots.item())
        self._real.zero_()
        self._slots.zero_()
        if not self._pending:
            return []
        values = torch.stack([loss for _, _, loss in self._pending]).float().tolist()
        pending, self._pending = self._pending, []
        for (step, task, _), value in zip(pending, values):
            _check(value, task, step)
        return values

    def throughput(self) -> dict[str, float]:
        """Real-token accounting of the steps so far (call after ``flush``)."""
        seconds = max(self.seconds, 1e-9)
        return {"train_tokens": float(self.real_tokens),
                "train_tokens_per_s": self.real_tokens / seconds,
                "train_examples_per_s": self.examples / seconds,
                "train_pad_fraction": 1.0 - self.real_tokens / max(self.token_slots, 1)}


def _check(value: float, task: str, step: int) -> None:
    if not np.isfinite(value):
        raise FloatingPointError(
            f"non-finite loss {value} on task {task!r} at step {step}; "
            "lower learning_rate or check the data")
