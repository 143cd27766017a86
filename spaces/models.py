"""The model-size catalogue: a named choice with its checkpoint and resources."""

from __future__ import annotations

from dataclasses import dataclass

#: checkpoint id of the embedded tiny model, resolved by trainables to a local folder
EMBEDDED_TINY = "embedded:tiny"


@dataclass(frozen=True)
class ModelSize:
    """One size: where the pretrained encoder comes from and what a trial needs."""

    name: str
    checkpoint: str
    params_millions: float
    #: fraction of one GPU per training worker when GPUs are used (trials pack by size)
    gpu_per_worker: float
    #: transformer layers of the encoder (retrieval reads one of them)
    layers: int
    cpu_per_worker: float = 1.0


MODEL_SIZES: dict[str, ModelSize] = {
    "tiny": ModelSize("tiny", EMBEDDED_TINY, params_millions=0.2, gpu_per_worker=0.125,
                      layers=2),
    "base": ModelSize("base", "FacebookAI/xlm-roberta-base", params_millions=278,
                      gpu_per_worker=0.5, layers=12),
    "large": ModelSize("large", "FacebookAI/xlm-roberta-large", params_millions=560,
                       gpu_per_worker=1.0, layers=24),
}


def get_model_size(name: str) -> ModelSize:
    """The catalogue entry ``name``; unknown names list the known ones."""
    try:
        return MODEL_SIZES[name]
    except KeyError:
        raise KeyError(
            f"unknown model size {name!r}; known sizes: {', '.join(MODEL_SIZES)}"
        ) from None
