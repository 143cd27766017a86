"""Multi-task samplers: which task each phase-2 batch comes from.

Three families (jiant's): ``softmax`` over searched logits; ``proportional``
to dataset size, p ∝ min(n, cap); ``temperature``, p ∝ min(n, cap)^(1/T).
The sampler's state is its generator's, so a checkpoint restores the draw
sequence exactly, and every DDP rank draws the same task at the same step.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np


def task_probabilities(family: str, *, sizes: Mapping[str, int],
                       logits: Mapping[str, float] | None = None,
                       temperature: float = 1.0, cap: int = 0) -> dict[str, float]:
    """Probability of each task (keys of ``sizes``, in order) under a family."""
    names = list(sizes)
    if not names:
        raise ValueError("no tasks to mix; include at least one intermediate task")
    if family == "softmax":
        z = [float((logits or {}).get(t, 0.0)) for t in names]
        m = max(z)
        w = [math.exp(x - m) for x in z]
    elif family in ("proportional", "temperature"):
        capped = [min(sizes[t], cap) if cap > 0 else sizes[t] for t in names]
        power = 1.0 / temperature if family == "temperature" else 1.0
        w = [float(n) ** power for n in capped]
    else:
        raise ValueError(f"mixing family {family!r} is unknown; use softmax, proportional or temperature")
    total = math.fsum(w)
    return {t: x / total for t, x in zip(names, w)}


class TaskSampler:
    """Draws task names with fixed probabilities from a seeded generator."""

    def __init__(self, probabilities: Mapping[str, float], seed: int):
        self.names = list(probabilities)
        self.p = np.array([probabilities[t] for t in self.names], dtype=np.float64)
        self.rng = np.random.default_rng(seed)

    def draw(self) -> str:
        return self.names[int(self.rng.choice(len(self.names), p=self.p))]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
