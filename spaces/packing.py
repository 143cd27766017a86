"""Trial packing: what a training worker of each model size needs of a GPU, the share of
one GPU it holds, and whether a trial or a sweep's space fits its share.

Several trials share a GPU: a worker of size S holds ``gpu_share(config, S)`` of one
(the config's ``gpu_share`` entry, else the catalogue's ``gpu_per_worker``), and Ray
places as many as fit. ``train_memory_gib`` estimates a worker's peak memory from its
batch shapes (``batch_shapes``: each task's worst case); ``packing_problem`` says why one
size does not fit its share of a ``gpu_memory_gib`` GPU, ``sweep_packing_problems`` does it
for every size a sweep's space draws (a sweep is refused before launch rather than OOM in
some trials), and ``idle_gpu_note`` warns when a sweep's concurrency leaves GPUs idle.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable, Mapping, Protocol, Union

from spaces.models import ModelSize, get_model_size
from spaces.tasks import get_task, intermediate_problem, task_names

if TYPE_CHECKING:
    from spaces.config import TrialConfig
    from spaces.sweep import SweepConfig

GIB = 2**30
#: fp32 weights (4) + gradients (4) + AdamW's two moments (8), bytes per parameter
STATE_BYTES_PER_PARAM = 16
#: CUDA context, cuBLAS/cuDNN workspaces and allocator slack of one process, in GiB
CUDA_OVERHEAD_GIB = 0.75



#: a batch shape of one task: (sequences per example, longest sequence in tokens); a
#: classification, tagging or span-QA example is one sequence, a multiple-choice example
#: one per choice
Shape = tuple[int, int]


def train_memory_gib(size_name: str, worker_batch: int, shapes: Mapping[str, Shape], *,
                     fused_attention: bool) -> float:
    """An estimate of one training worker's peak GPU memory, in GiB.

    ``worker_batch`` is the worker's batch (the trial's divided among its workers);
    ``shapes`` gives, per task the worker trains on, its batch shape: (sequences per
    example, the width s a batch is padded to, in tokens). A batch holds one task (the
    mixing sampler draws a task per batch), so the activations are those of the task whose
    batch is largest, not the largest width times the most choices of any task. With P
    parameters, L layers, hidden size h, a heads, and t = worker_batch × sequences × s
    tokens in a batch of a task::

        memory = 16·P                                fp32 weights, gradients, AdamW's moments
               + max over tasks L · t · (34·h + A)   activations kept for the backward pass
               + 0.75 GiB                            CUDA context and workspaces

    with A = 5·a·s for eager attention (``fused_attention=False``, the ``plain`` step) and
    A = 0 for fused attention (PyTorch SDPA, the ``lean`` step). The activation term is
    Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
    Models", eq. 1, no parallelism): per layer and token, 34·h bytes for the 16-bit inputs
    of the matmuls, layer norms, GELU and dropout masks under bf16 autocast, plus 5·a·s
    for the attention scores, their softmax and its dropout mask, which flash and
    memory-efficient attention never store (they recompute them in the backward).

    Not counted (each well under a GiB at the paper's scale): the bf16 copies of the
    weights autocast keeps for the backward (2 bytes per non-embedding parameter: 0.16 GiB
    base, 0.57 GiB large) and the training splits the ``lean`` step keeps on the device
    (int32 ids: about 0.45 GiB for the paper's nine intermediate tasks and MNLI). They
    fit in what the worst case leaves (``spaces.config.batch_shapes``: every batch of every
    task at ``max_length``) and inside the allocator cap, which is the share, not this.
    """
    size = get_model_size(size_name)
    states = STATE_BYTES_PER_PARAM * size.params_millions * 1e6
    activations = max((activation_bytes(size, worker_batch, shape,
                                        fused_attention=fused_attention)
                       for shape in shapes.values()), default=0)
    return (states + activations) / GIB + CUDA_OVERHEAD_GIB


def activation_bytes(size: ModelSize, worker_batch: int, shape: Shape, *,
                     fused_attention: bool) -> int:
    """Bytes of activations one batch of ``shape`` keeps for its backward pass (the
    activation term of ``train_memory_gib``)."""
    sequences, width = shape
    tokens = worker_batch * sequences * width
    attention = 0 if fused_attention else 5 * size.heads * width
    return size.layers * tokens * (34 * size.hidden + attention)


def largest_batch(size_name: str, worker_batch: int, shapes: Mapping[str, Shape], *,
                  fused_attention: bool) -> str | None:
    """The task whose batch needs the most activation memory (the one that sets
    ``train_memory_gib``; the first listed among equals), or None without tasks."""
    size = get_model_size(size_name)
    return max(shapes, default=None, key=lambda task: activation_bytes(
        size, worker_batch, shapes[task], fused_attention=fused_attention))


class _HasShares(Protocol):
    @property
    def gpu_share(self) -> Mapping[str, float]: ...


def gpu_share(shares: Union[_HasShares, Mapping[str, float]], size: str) -> float:
    """The fraction of one GPU a worker of model size ``size`` holds: the config's (or the
    mapping's) ``gpu_share`` entry for it, else the catalogue's ``gpu_per_worker``."""
    table = shares if isinstance(shares, Mapping) else shares.gpu_share
    return float(table.get(size, get_model_size(size).gpu_per_worker))


def batch_shapes(c: "TrialConfig", intermediate_tasks: Iterable[str] | None = None
                 ) -> dict[str, Shape]:
    """The worst-case batch shape of every task a trial of ``c`` trains on, for when its
    data is not at hand: task -> (sequences per example, ``c.max_length``), sequences being
    a multiple-choice task's own number of choices and 1 for every other format.

    The tasks are the target (trained on its ``train_task`` where it has one: XQuAD and
    MLQA on SQuAD; a retrieval target trains nothing) and, when ``intermediate_steps`` > 0,
    the intermediate tasks: ``intermediate_tasks`` when given (the tasks a sweep's space
    may draw), else ``c.intermediate_tasks`` (``task@lang`` included). Unknown names are
    left out.
    """
    known = set(task_names())
    shapes: dict[str, Shape] = {}
    if c.intermediate_steps > 0 or intermediate_tasks is not None:
        for name in c.intermediate_tasks if intermediate_tasks is None else intermediate_tasks:
            if intermediate_problem(name) is None:
                shapes[name] = (_sequences(name), c.max_length)
    if c.target in known:
        target = get_task(c.target)
        if target.format != "retrieval":
            shapes[c.target] = (_sequences(target.train_task or c.target), c.max_length)
    return shapes


def _sequences(name: str) -> int:
    task = get_task(name)
    return len(task.labels) if task.format == "multiple_choice" else 1


def packing_problem(c: "TrialConfig", size: str, batch_size: int,
                    shapes: Mapping[str, Shape] | None = None) -> str | None:
    """Why a worker of model ``size`` at ``batch_size`` (the trial's, split among
    ``c.num_workers``) does not fit its GPU share of a ``c.gpu_memory_gib`` GPU, or None.

    ``shapes``: task -> (sequences per example, longest sequence); None: the worst case of
    ``c``'s own tasks (``batch_shapes(c)``). Attention is fused for the ``lean`` step, eager for ``plain``.
    """
    if shapes is None:
        shapes = batch_shapes(c)
    fused = c.train_step == "lean"
    worker_batch = -(-batch_size // c.num_workers)
    need = train_memory_gib(size, worker_batch, shapes, fused_attention=fused)
    share = gpu_share(c, size)
    if share * c.gpu_memory_gib >= need:
        return None
    setting = f"model_size={size!r} at batch_size={batch_size}, max_length={c.max_length}"
    task = largest_batch(size, worker_batch, shapes, fused_attention=fused)
    if task is not None:
        sequences, width = shapes[task]
        if sequences > 1:
            setting += f", {task}'s {sequences} choices per example"
        if width != c.max_length:
            setting += f", {task}'s sequences of up to {width} tokens"
    if need > c.gpu_memory_gib:
        fix = "lower batch_size or max_length (or raise num_workers)"
    else:
        enough = math.ceil(need / c.gpu_memory_gib * 100) / 100
        fix = f"raise gpu_share.{size} to at least {enough}, or lower batch_size or max_length"
    return (f"{setting} needs about {need:.1f} GiB of GPU memory per worker (estimate, "
            f"spaces/packing.py train_memory_gib), but gpu_share.{size}={share:g} of a "
            f"{c.gpu_memory_gib:g}-GiB GPU is {share * c.gpu_memory_gib:.1f} GiB; {fix}")


def sweep_packing_problems(base: "TrialConfig", sweep: "SweepConfig") -> list[str]:
    """Model sizes of the space that would not fit their GPU share at the space's largest
    batch size (``base.gpu_memory_gib`` known, GPUs used): a sweep is refused before
    launch rather than OOM in some trials. Multiple-choice tasks the space may include
    count with their own choices (``batch_shapes``: each task's worst case)."""
    if not base.use_gpu or base.gpu_memory_gib <= 0:
        return []
    space = sweep.space
    shapes = batch_shapes(base, space.tasks)
    problems = [packing_problem(base, size, max(space.batch_size), shapes)
                for size in space.model_sizes]
    return [f"search.space: {p}" for p in problems if p]


def idle_gpu_note(base: "TrialConfig", sweep: "SweepConfig", gpus: float) -> str | None:
    """A warning when ``gpus`` GPUs would sit partly idle: the sweep keeps at most
    ``concurrency`` trials in flight, fewer than the GPUs hold of any size of the space
    at its ``gpu_share``. None when GPUs are not used or the sweep fills them."""
    if not base.use_gpu or gpus <= 0 or sweep.trainable != "model":
        return None
    holds = {size: int(gpus / (gpu_share(base, size) * base.num_workers) + 1e-9)
             for size in sweep.space.model_sizes}
    if sweep.concurrency >= min(holds.values()):
        return None
    fits = ", ".join(f"{n} {size}" for size, n in holds.items())
    return (f"search.concurrency={sweep.concurrency} keeps at most {sweep.concurrency} trials "
            f"in flight, but the cluster's {gpus:g} GPUs hold {fits} trials at their "
            f"gpu_share: GPUs will sit idle; raise search.concurrency to "
            f"{min(holds.values())} or more (--set search.concurrency=N)")
