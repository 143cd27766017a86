"""The model-size catalogue: a named choice with its checkpoint and resources (what a
worker of each size needs of a GPU: ``spaces.packing``)."""

from __future__ import annotations

from dataclasses import dataclass

from spaces.errors import UnknownNameError

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
    # tiny: trainables/embedded_default.py TINY_ARCH (hidden_size 64, 2 layers, 4 heads)
    "tiny": ModelSize("tiny", EMBEDDED_TINY, params_millions=0.2, gpu_per_worker=0.125,
                      layers=2, hidden=64, heads=4),
    "base": ModelSize("base", "FacebookAI/xlm-roberta-base", params_millions=278,
                      gpu_per_worker=0.5, layers=12, hidden=768, heads=12),
    "large": ModelSize("large", "FacebookAI/xlm-roberta-large", params_millions=560,
                       gpu_per_worker=1.0, layers=24, hidden=1024, heads=16),
}

def get_model_size(name: str) -> ModelSize:
    """The catalogue entry ``name``; unknown names list the known ones."""
    try:
        return MODEL_SIZES[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown model size {name!r}; known sizes: {', '.join(MODEL_SIZES)}"
        ) from None
