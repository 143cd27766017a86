"""A surrogate trial: no model, a known seeded function of the real search space.

For benchmarks and large-scale tests of the search machinery: it takes the
same ``TrialConfig`` as a real trial and returns the same headline metrics
(``score``, ``zs_accuracy``, ``zs_ece``) in microseconds. Its noise-free
optimum over any ``SpaceSpec`` is known (``surrogate_optimum``), so "how many
trials until within a margin of the best" can be measured.

Shape (separable, so the optimum is found term by term):
accuracy = 0.50 + Σ_{t in subset} TASK_GAIN[t]
           + mixing bonus (2+ tasks; softmax: 0.03·p(the subset's best task);
             proportional 0.01; temperature 0.015)
           + SIZE_GAIN[size] − 0.05·(log10 lr − log10 BEST_LR[size])²
           − 0.02·|warmup − 0.1| + 0.02·(1 − 2^(−steps/250)),
ece = 0.05 + 0.02·[demo-topic in subset], score = accuracy − λ·ece,
plus N(0, noise) on accuracy, seeded by the config hash.

Task gains follow the paper's finding for the real tasks (SQuAD, MNLI and
HellaSwag the best single tasks) and the demo suite's for the demo tasks.
"""

from __future__ import annotations

import itertools
import math
import random

from spaces.config import TrialConfig
from spaces.objective import score
from spaces.space import SpaceSpec

TASK_GAIN = {
    "demo-polarity": 0.10, "demo-match": 0.04, "demo-topic": -0.03, "demo-tags": 0.0,
    "squad": 0.06, "mnli": 0.05, "hellaswag": 0.045, "anli": 0.03, "cosmosqa": 0.025,
    "commonsenseqa": 0.02, "qqp": 0.01, "sst2": 0.0, "ccg": -0.01,
}
SIZE_GAIN = {"tiny": 0.0, "base": 0.04, "large": 0.06}
BEST_LR = {"tiny": 2.5e-3, "base": 1.5e-5, "large": 1e-5}
FAMILY_BONUS = {"proportional": 0.01, "temperature": 0.015}
SOFTMAX_BONUS = 0.03


def _tasks_term(tasks, mixing: str, logits: dict[str, float]) -> float:
    acc = sum(TASK_GAIN.get(t, 0.0) for t in tasks)
    if len(tasks) > 1:
        if mixing == "softmax":
            top = max(tasks, key=lambda t: (TASK_GAIN.get(t, 0.0), t))
            z = {t: math.exp(logits.get(t, 0.0)) for t in tasks}
            acc += SOFTMAX_BONUS * z[top] / sum(z.values())
        else:
            acc += FAMILY_BONUS.get(mixing, 0.0)
    return acc


def _steps_term(steps: int) -> float:
    return 0.02 * (1 - 2 ** (-steps / 250))


def surrogate_accuracy(cfg: TrialConfig) -> float:
    acc = 0.50 + _tasks_term(cfg.intermediate_tasks, cfg.mixing, cfg.mixing_logits())
    acc += SIZE_GAIN.get(cfg.model_size, 0.0)
    acc -= 0.05 * (math.log10(cfg.learning_rate) - math.log10(BEST_LR[cfg.model_size])) ** 2
    acc -= 0.02 * abs(cfg.warmup_ratio - 0.1)
    return acc + _steps_term(cfg.intermediate_steps)


def _ece(tasks) -> float:
    return 0.05 + (0.02 if "demo-topic" in tasks else 0.0)


def surrogate_metrics(cfg: TrialConfig, *, noise: float = 0.005) -> dict[str, float]:
    rng = random.Random(f"{cfg.config_hash()}")
    acc = min(1.0, max(0.0, surrogate_accuracy(cfg) + rng.gauss(0.0, noise)))
    ece = _ece(cfg.intermediate_tasks)
    return {"zs_accuracy": acc, "zs_ece": ece,
            "score": score(acc, ece, weight=cfg.objective_weight)}


def surrogate_optimum(spec: SpaceSpec, objective_weight: float = 1.0) -> float:
    """The noise-free best score over ``spec``: the best subset and mixing (subsets
    enumerated, softmax logits at the ends of ``weight_range``), and each continuous
    term at its best point of its range."""
    lo_w, hi_w = spec.weight_range
    best_tasks = -math.inf
    for k in range(1, len(spec.tasks) + 1):
        for subset in itertools.combinations(spec.tasks, k):
            top = max(subset, key=lambda t: (TASK_GAIN.get(t, 0.0), t))
            logits = {t: hi_w if t == top else lo_w for t in subset}
            value = max(_tasks_term(subset, m, logits) for m in spec.mixing)
            best_tasks = max(best_tasks, value - objective_weight * _ece(subset))
    lr_lo, lr_hi = (math.log10(x) for x in spec.learning_rate)
    best_size = max(
        SIZE_GAIN.get(s, 0.0)
        - 0.05 * (min(max(math.log10(BEST_LR[s]), lr_lo), lr_hi) - math.log10(BEST_LR[s])) ** 2
        for s in spec.model_sizes)
    w_lo, w_hi = spec.warmup_ratio
    warm = 0.02 * (w_lo - 0.1 if w_lo > 0.1 else 0.1 - w_hi if w_hi < 0.1 else 0.0)
    low, high, step = spec.intermediate_steps
    top_steps = low + (high - low) // step * step if step else high  # suggest_int's largest
    return 0.50 + best_tasks + best_size - warm + _steps_term(top_steps)
