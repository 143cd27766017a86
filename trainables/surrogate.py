"""A surrogate trial: no model, a known seeded function of the real search space.

For benchmarks and large-scale tests of the search machinery: it takes the
same ``TrialConfig`` as a real trial and returns the same headline metrics
(``score``, ``zs_accuracy``, ``zs_ece``) in microseconds. Its noise-free
optimum over any ``SpaceSpec`` is known (``surrogate_optimum``), so "how many
trials until within a margin of the best" can be measured.

Final value (separable, so the optimum is found term by term):
accuracy = 0.50 + Σ_{t in subset} TASK_GAIN[t]
           + mixing bonus (2+ tasks; softmax: 0.03·p(the subset's best task);
             proportional 0.01; temperature 0.015)
           + SIZE_GAIN[size] − 0.05·(log10 lr − log10 BEST_LR[size])²
           − 0.02·|warmup − 0.1| + 0.02·(1 − 2^(−steps/250)),
ece = 0.05 + 0.02·[demo-topic in subset], score = accuracy − λ·ece,
plus N(0, noise) on accuracy, seeded by the config hash.

Task gains follow the paper's finding for the real tasks (SQuAD, MNLI and
HellaSwag the best single tasks) and the demo suite's for the demo tasks.

Fidelity (``surrogate_phases``, ``surrogate_curve``): a trial has the model
trial's two phases, counted in optimizer steps as ``trainables.loop`` counts
them. Phase 2 lasts ``intermediate_steps``; phase 3 lasts
``ceil(target_epochs · ceil(n / batch_size))`` with ``n`` the target's English
training examples (``TARGET_EXAMPLES``: XNLI trains on MNLI's 392,702, so the
paper-base trial's phase 3 is 24,544 steps and its phase 2, 5k–20k steps, a
sixth to a half of the steps; a phase-2 step of its task mix costs ~3.6× the
FLOPs of an XNLI step, so phase 2 is about two thirds of the FLOPs
(``benchmarks/sweep_cost.py cost-model``); the demo's target has 160 examples,
so its 40 steps follow 200–500 of phase 2). What a trial reports at a
``budget`` (``spaces.objective.budget``):

- in phase 2, at progress ``f`` = phase-2 steps done / ``intermediate_steps``: a
  target probe, ``final − PROBE_BIAS − PROBE_GAP·(1 − f) + N(0, PROBE_NOISE)``
  on accuracy: it ranks configs like the final score, noisily, lower, and less
  so as phase 2 goes on;
- in phase 3, at progress ``g`` = phase-3 steps done / its steps: the
  evaluation, ``final − PROBE_BIAS·(1 − g) + N(0, PROBE_NOISE·(1 − g))``: an
  early checkpoint predicts the final value about as noisily as a probe, a
  late one closely, the last one is the final value.

Noise is seeded by the config hash and the point of training (phase-2 and
phase-3 steps done), so a point reads the same whichever way the budget counts.
"""

from __future__ import annotations

import itertools
import math
import random

from spaces.config import TrialConfig
from spaces.objective import ACCURACY_KEY, ECE_KEY, OBJECTIVE_ECE, SCORE_KEY, score
from spaces.space import SpaceSpec
from spaces.tasks import get_task

TASK_GAIN = {
    "demo-polarity": 0.10, "demo-match": 0.04, "demo-topic": -0.03, "demo-tags": 0.0,
    "squad": 0.06, "mnli": 0.05, "hellaswag": 0.045, "anli": 0.03, "cosmosqa": 0.025,
    "commonsenseqa": 0.02, "qqp": 0.01, "sst2": 0.0, "ccg": -0.01,
}
SIZE_GAIN = {"tiny": 0.0, "base": 0.04, "large": 0.06}
BEST_LR = {"tiny": 2.5e-3, "base": 1.5e-5, "large": 1e-5}
FAMILY_BONUS = {"proportional": 0.01, "temperature": 0.015}
SOFTMAX_BONUS = 0.03

#: English training examples of a target's phase 3, by the task it trains on (XQuAD and MLQA
#: train on SQuAD); retrieval targets have no phase 3
TARGET_EXAMPLES = {"demo-sentiment": 160, "xnli": 392_702, "pawsx": 49_401, "panx": 20_000,
                   "squad": 87_599, "tydiqa": 3_696}
#: any other target with a training set (UD-POS: a round figure, not its size)
DEFAULT_TARGET_EXAMPLES = 20_000
#: a probe scores below the final value even at the end of phase 2 (a short fine-tune on a few
#: English examples), by this much
PROBE_BIAS = 0.02
#: and by this much more at the start of phase 2, shrinking linearly to 0 at its end
PROBE_GAP = 0.03
#: standard deviation of a probe's accuracy around its mean (a short fine-tune, dev subsets);
#: a phase-3 evaluation's shrinks from it to 0 at the end of phase 3
PROBE_NOISE = 0.01


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
    return _metrics(cfg, acc, ece)


def _metrics(cfg: TrialConfig, acc: float, ece: float) -> dict[str, float]:
    # the surrogate models one ECE, the one the objective uses (raw or after scaling)
    return {ACCURACY_KEY: acc, ECE_KEY: ece, OBJECTIVE_ECE[cfg.objective_ece]: ece,
            SCORE_KEY: score(acc, ece, weight=cfg.objective_weight)}


def surrogate_phases(cfg: TrialConfig) -> tuple[int, int]:
    """Optimizer steps of the trial's phase 2 and phase 3, as a model trial counts them."""
    target = get_task(cfg.target)
    if target.format == "retrieval":
        return cfg.intermediate_steps, 0
    n = TARGET_EXAMPLES.get(target.train_task or target.name, DEFAULT_TARGET_EXAMPLES)
    if cfg.max_train_examples:
        n = min(n, cfg.max_train_examples)
    return cfg.intermediate_steps, math.ceil(cfg.target_epochs * math.ceil(n / cfg.batch_size))


def surrogate_longest(base: TrialConfig, spec: SpaceSpec) -> tuple[int, int]:
    """The most steps of phase 2 and of phase 3 a trial of ``spec`` can draw."""
    low, high, step = spec.intermediate_steps
    top_steps = low + (high - low) // step * step if step else high  # suggest_int's largest
    steps_3 = max(surrogate_phases(base.replace(target_epochs=e, batch_size=b))[1]
                  for e in spec.target_epochs for b in spec.batch_size)
    return top_steps, steps_3


def surrogate_progress(cfg: TrialConfig, budget: int, *, two_phase: bool) -> tuple[int, int]:
    """Phase-2 and phase-3 steps a trial has run at ``budget`` (``spaces.objective.budget``):
    without ``two_phase`` the budget counts phase-3 steps, after a whole phase 2."""
    steps_2, steps_3 = surrogate_phases(cfg)
    if two_phase:
        return min(budget, steps_2), min(steps_3, max(0, budget - steps_2))
    return steps_2, min(steps_3, budget)


def surrogate_curve(cfg: TrialConfig, budget: int, *, two_phase: bool,
                    noise: float = 0.005) -> dict[str, float]:
    """What the trial reports at ``budget``: a noisy target probe while it is in phase 2
    (a budget at or before the end of phase 2), the evaluation climbing to
    ``surrogate_metrics(cfg)`` in phase 3; the module's docstring gives the shape."""
    final = surrogate_metrics(cfg, noise=noise)
    steps_2, steps_3 = surrogate_phases(cfg)
    done_2, done_3 = surrogate_progress(cfg, budget, two_phase=two_phase)
    # noise seeded by the point of training, so a budget counted either way draws the same
    if done_3 == 0 and steps_3 > 0:  # a probe
        rng = random.Random(f"{cfg.config_hash()}/probe/{done_2}")
        left_2 = 1.0 - done_2 / steps_2 if steps_2 else 0.0
        acc = final[ACCURACY_KEY] - PROBE_BIAS - PROBE_GAP * left_2 + rng.gauss(0.0, PROBE_NOISE)
    else:  # an evaluation (a retrieval target, without phase 3, scores the encoder as it is)
        done, steps = (done_3, steps_3) if steps_3 else (done_2, steps_2)
        if done >= steps:
            return final
        left = 1.0 - done / steps
        rng = random.Random(f"{cfg.config_hash()}/eval/{done_2}/{done_3}")
        acc = final[ACCURACY_KEY] - PROBE_BIAS * left + rng.gauss(0.0, PROBE_NOISE * left)
    acc = min(1.0, max(0.0, acc))
    ece = final[ECE_KEY]
    return _metrics(cfg, acc, ece)


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


def surrogate_similarity(tasks, target: str, *, noise: float, seed: int) -> list[dict]:
    """A similarity estimate of known quality for each task (``xstilts similarity`` on a
    surrogate sweep): its true gain ``TASK_GAIN`` plus N(0, ``noise``), seeded by ``seed``
    and the task; rows shaped like ``trainables.similarity.estimate_pair``'s."""
    rows = []
    for task in tasks:
        rng = random.Random(f"similarity/{seed}/{task}")
        rows.append({"intermediate": task, "target": target, "model_size": "surrogate",
                     "seed": seed, "method": "surrogate",
                     "estimate": TASK_GAIN.get(task, 0.0) + rng.gauss(0.0, noise),
                     "logme": math.nan, "logme_pretrained": math.nan, "logme_gain": math.nan,
                     "text_cosine": math.nan, "steps": 0, "examples": 0, "seconds": 0.0})
    return rows
