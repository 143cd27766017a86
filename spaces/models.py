"""The model-size catalogue: a named choice with its checkpoint and resources, and what a
training worker of each size needs of a GPU (trial packing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Union

#: checkpoint id of the embedded tiny model, resolved by trainables to a local folder
EMBEDDED_TINY = "embedded:tiny"


@dataclass(frozen=True)
class ModelSize:
    """One size: where the pretrained encoder comes from and what a trial needs."""

    name: str
    checkpoint: str
    params_millions: float
    #: fraction of one GPU per training worker when GPUs are used (trials pack by size);
    #: a config's ``gpu_share`` overrides it (see ``gpu_share``)
    gpu_per_worker: float
    #: transformer layers of the encoder (retrieval reads one of them)
    layers: int
    #: hidden size and attention heads of the encoder (the activation estimate reads them)
    hidden: int
    heads: int
    cpu_per_worker: float = 1.0


MODEL_SIZES: dict[str, ModelSize] = {
    # tiny: trainables/embedded.py TINY_ARCH (hidden_size 64, 2 layers, 4 heads)
    "tiny": ModelSize("tiny", EMBEDDED_TINY, params_millions=0.2, gpu_per_worker=0.125,
                      layers=2, hidden=64, heads=4),
    "base": ModelSize("base", "FacebookAI/xlm-roberta-base", params_millions=278,
                      gpu_per_worker=0.5, layers=12, hidden=768, heads=12),
    "large": ModelSize("large", "FacebookAI/xlm-roberta-large", params_millions=560,
                       gpu_per_worker=1.0, layers=24, hidden=1024, heads=16),
}

GIB = 2**30
#: fp32 weights (4) + gradients (4) + AdamW's two moments (8), bytes per parameter
STATE_BYTES_PER_PARAM = 16
#: CUDA context, cuBLAS/cuDNN workspaces and allocator slack of one process, in GiB
CUDA_OVERHEAD_GIB = 0.75


def get_model_size(name: str) -> ModelSize:
    """The catalogue entry ``name``; unknown names list the known ones."""
    try:
        return MODEL_SIZES[name]
    except KeyError:
        raise KeyError(
            f"unknown model size {name!r}; known sizes: {', '.join(MODEL_SIZES)}"
        ) from None


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
