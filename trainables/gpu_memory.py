"""A packed trial's claim on its GPU: check the memory is there, then keep to its share.

Ray's fractional GPUs are bookkeeping only: a worker holding 0.25 of a GPU can still
allocate all of it, and then the trial that OOMs is whichever asks next, often a
neighbour. So each worker checks, before it loads the model, that its share of the GPU
holds the estimated need of its model size at the batch shapes of its data
(``spaces.packing.train_memory_gib``) and that that much is free now, then caps PyTorch's
caching allocator at its share: a trial that outgrows its share OOMs itself, not its
neighbours.
"""

from __future__ import annotations

import logging
import math
from typing import Mapping

import torch

from spaces.config import TrialConfig
from spaces.packing import (CUDA_OVERHEAD_GIB, GIB, Shape, batch_shapes, gpu_share, largest_batch,
                           train_memory_gib)
from trainables.tokens import bucket_width

log = logging.getLogger("xstilts.trial")

#: allocator cap as a multiple of the share: 1.0, no borrowing from neighbours
HEADROOM = 1.0


def memory_verdict(share: float, free_bytes: int, total_bytes: int, need_bytes: int, *,
                   overhead_bytes: int = 0) -> tuple[float, str | None, bool]:
    """What a worker holding ``share`` of a GPU may do: (allocator fraction, problem or
    None, whether the problem is permanent).

    ``need_bytes`` includes ``overhead_bytes`` that live outside PyTorch's allocator (the
    CUDA context, already created when ``free_bytes`` was measured): the allocator is
    capped at the share less that, so the whole process keeps to its share. A share
    smaller than the need fails on every GPU of this size (permanent); memory held now by
    other processes may be let go (transient: Tune retries the trial).
    """
    fraction = min(1.0, max(0.0, share * HEADROOM - overhead_bytes / total_bytes))
    gib = total_bytes / GIB
    if share * total_bytes < need_bytes:
        return fraction, (
            f"needs about {need_bytes / GIB:.1f} GiB of GPU memory (estimate), but its "
            f"gpu_share {share:g} of this {gib:.0f}-GiB GPU is {share * gib:.1f} GiB; raise "
            f"its gpu_share to at least {math.ceil(need_bytes / total_bytes * 100) / 100} "
            "(fewer trials per GPU), or lower batch_size or max_length"), True
    if free_bytes < need_bytes - overhead_bytes:
        return fraction, (
            f"needs about {need_bytes / GIB:.1f} GiB of GPU memory (estimate), but only "
            f"{free_bytes / GIB:.1f} of this {gib:.0f}-GiB GPU's GiB are free: other "
            "processes hold the GPU (trials packed past their shares, or work outside "
            "this sweep); the trial is retried"), False
    return fraction, None, False


def claim_gpu(cfg: TrialConfig, device: torch.device,
              shapes: Mapping[str, Shape] | None = None) -> None:
    """On a CUDA ``device``: refuse to start a worker that cannot fit (ValueError when its
    share is too small, RuntimeError when the memory is taken now), else cap the
    allocator at the worker's share. Elsewhere, nothing.

    ``shapes``: the batch shapes of the data the worker trains on, task -> (sequences per
    example, its longest sequence in tokens), as encoded; the estimate then follows them
    (widths rounded up to the ``lean`` step's shape buckets). None: the worst case of the
    config's tasks, every batch at ``max_length`` (``spaces.packing.batch_shapes``).
    """
    if device.type != "cuda":
        return
    share = gpu_share(cfg, cfg.model_size)
    free, total = torch.cuda.mem_get_info(device)  # creates this process's CUDA context
    lean = cfg.train_step == "lean"
    if shapes is None:
        shapes, source = batch_shapes(cfg), f"the worst case, max_length={cfg.max_length}"
    else:  # the lean step pads a batch to a multiple of BUCKET tokens, plain to its longest
        shapes = {task: (sequences, bucket_width(width) if lean else width)
                  for task, (sequences, width) in shapes.items()}
        source = "the encoded data"
    worker_batch = -(-cfg.batch_size // cfg.num_workers)
    need = int(train_memory_gib(cfg.model_size, worker_batch, shapes, fused_attention=lean) * GIB)
    largest = largest_batch(cfg.model_size, worker_batch, shapes, fused_attention=lean)
    batch = "no training batches" if largest is None else (
        f"largest batch {largest} {worker_batch}×{shapes[largest][0]}×{shapes[largest][1]} "
        f"tokens, from {source}, {'fused' if lean else 'eager'} attention")
    fraction, problem, permanent = memory_verdict(
        share, free, total, need, overhead_bytes=int(CUDA_OVERHEAD_GIB * GIB))
    if problem:
        message = (f"model_size={cfg.model_size!r} at batch_size={cfg.batch_size}, "
                   f"max_length={cfg.max_length} ({batch}) {problem}")
        raise ValueError(message) if permanent else RuntimeError(message)
    torch.cuda.set_per_process_memory_fraction(fraction, device)
    log.info("GPU %s: %.1f of %.1f GiB free; this worker needs about %.1f GiB (%s) and may "
             "allocate %.1f%% of it", device, free / GIB, total / GIB, need / GIB, batch,
             100 * fraction)
