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


def train_memory_gib(size_name: str, batch_size: int, max_length: int, choices: int = 1) -> float:
    """An estimate of one training worker's peak GPU memory, in GiB.

    ``batch_size`` is the worker's batch (the trial's divided among its workers); a
    multiple-choice example is ``choices`` sequences. With P parameters, L layers, hidden
    size h, a heads, sequence length s = ``max_length`` and t = batch × s × choices tokens
    per step::

        memory = 16·P                      fp32 weights, gradients, AdamW's two moments
               + L · t · (34·h + 5·a·s)    activations kept for the backward pass
               + 0.75 GiB                  CUDA context and workspaces

    The activation term is Korthikanti et al. 2022 ("Reducing Activation Recomputation in
    Large Transformer Models", eq. 1, no parallelism): per layer and token, 34·h bytes for
    the 16-bit inputs of the matmuls, layer norms, GELU and dropout masks, plus 5·a·s for
    the attention scores, softmax and its dropout mask, under bf16 autocast. Fused
    attention (SDPA, the ``lean`` step) keeps no scores, so this errs on the safe side;
    every batch is taken at full length, the worst case of length grouping.
    """
    size = get_model_size(size_name)
    tokens = batch_size * max_length * choices
    states = STATE_BYTES_PER_PARAM * size.params_millions * 1e6
    activations = size.layers * tokens * (34 * size.hidden + 5 * size.heads * max_length)
    return (states + activations) / GIB + CUDA_OVERHEAD_GIB


class _HasShares(Protocol):
    @property
    def gpu_share(self) -> Mapping[str, float]: ...


def gpu_share(shares: Union[_HasShares, Mapping[str, float]], size: str) -> float:
    """The fraction of one GPU a worker of model size ``size`` holds: the config's (or the
    mapping's) ``gpu_share`` entry for it, else the catalogue's ``gpu_per_worker``."""
    table = shares if isinstance(shares, Mapping) else shares.gpu_share
    return float(table.get(size, get_model_size(size).gpu_per_worker))
