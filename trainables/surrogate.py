"""A surrogate trial: no model, a known seeded function of the real search space.

For benchmarks and large-scale tests of the search machinery: it takes the
same ``TrialConfig`` as a real trial and returns the same headline metrics
(``score``, ``zs_accuracy``, ``zs_ece``) in microseconds. Its noise-free
optimum is known in closed form (``surrogate_optimum()`` for the demo space), so
"how many trials until within a margin of the best" can be measured.

Shape (each term separable, so the optimum is the sum of the terms' maxima):
accuracy = 0.50 + 0.10·[polarity] + 0.04·[match] − 0.03·[topic]
           + mixing bonus (softmax: 0.03·p(polarity); proportional 0.01; temperature 0.015)
           − 0.05·(log10 lr − log10 2.5e-3)² − 0.02·|warmup − 0.1|
           + 0.02·(intermediate_steps − 200) / 300,
ece = 0.05 + 0.02·[topic], score = accuracy − λ·ece, plus N(0, noise) on accuracy.
"""

from __future__ import annotations

import math
import random

from spaces.config import TrialConfig
from spaces.objective import score
from trainables.mixing import task_probabilities

TASK_GAIN = {"demo-polarity": 0.10, "demo-match": 0.04, "demo-topic": -0.03}
BEST_LR = 2.5e-3


def surrogate_accuracy(cfg: TrialConfig) -> float:
    tasks = cfg.intermediate_tasks
    acc = 0.50 + sum(TASK_GAIN.get(t, 0.0) for t in tasks)
    if len(tasks) > 1:
        if cfg.mixing == "softmax":
            p = task_probabilities("softmax", sizes=dict.fromkeys(tasks, 1),
                                   logits=cfg.mixing_logits())
            acc += 0.03 * p.get("demo-polarity", 0.0)
        else:
            acc += 0.01 if cfg.mixing == "proportional" else 0.015
    acc -= 0.05 * (math.log10(cfg.learning_rate) - math.log10(BEST_LR)) ** 2
    acc -= 0.02 * abs(cfg.warmup_ratio - 0.1)
    acc += 0.02 * (cfg.intermediate_steps - 200) / 300
    return acc


def surrogate_metrics(cfg: TrialConfig, *, noise: float = 0.005) -> dict[str, float]:
    rng = random.Random(f"{cfg.config_hash()}")
    acc = min(1.0, max(0.0, surrogate_accuracy(cfg) + rng.gauss(0.0, noise)))
    ece = 0.05 + (0.02 if "demo-topic" in cfg.intermediate_tasks else 0.0)
    return {"zs_accuracy": acc, "zs_ece": ece,
            "score": score(acc, ece, weight=cfg.objective_weight)}


def surrogate_optimum(objective_weight: float = 1.0, weight_range: float = 3.0) -> float:
    """The noise-free best score over the demo space (logits bounded by ±weight_range)."""
    p = math.exp(weight_range) / (math.exp(weight_range) + math.exp(-weight_range))
    acc = 0.50 + 0.10 + 0.04 + 0.03 * p + 0.02
    return acc - objective_weight * 0.05
