"""Calibration metrics and temperature scaling, on numpy arrays.

Definitions (Guo et al. 2017): confidence is the maximum probability; the
[0, 1] range is cut into ``n_bins`` equal-width bins (m-1)/M < conf <= m/M;
ECE = Σ_b (|B_b|/n)·|acc(B_b) − conf(B_b)|, MCE = max over non-empty bins;
Brier = mean over examples of Σ_c (p_c − y_c)²; NLL = mean −log p_y.
"""

from __future__ import annotations

import math
import re

import numpy as np

_EPS = 1e-12


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _bins(probs: np.ndarray, labels: np.ndarray, n_bins: int):
    """Per non-empty bin: (bin index from 0, count, accuracy, mean confidence)."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    idx = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    for b in range(n_bins):
        mask = idx == b
        n = int(mask.sum())
        if n:
            yield b, n, float(correct[mask].mean()), float(conf[mask].mean())


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error, a fraction in [0, 1]."""
    total = len(labels)
    return math.fsum(n / total * abs(acc - conf) for _, n, acc, conf in _bins(probs, labels, n_bins))


#: a reliability diagram's numbers, one per non-empty bin NN (01 = the lowest confidences):
#: ``binNN_count``, ``binNN_confidence`` (mean), ``binNN_accuracy``
RELIABILITY_KEY = re.compile(r"bin\d{2,}_(count|confidence|accuracy)$")


def reliability(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> dict[str, float]:
    """What a reliability diagram draws, in ``RELIABILITY_KEY`` names; the ECE is
    Σ count/n · |accuracy − confidence| over them, as ``ece`` computes it."""
    out: dict[str, float] = {}
    for b, n, acc, conf in _bins(probs, labels, n_bins):
        out.update({f"bin{b + 1:02d}_count": float(n), f"bin{b + 1:02d}_confidence": conf,
                    f"bin{b + 1:02d}_accuracy": acc})
    return out


def is_reliability_key(key: str) -> bool:
    """Whether a metric name (``_ts`` suffix allowed) is a reliability bin's."""
    return RELIABILITY_KEY.match(key.removesuffix("_ts")) is not None


def mce(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Maximum calibration error over non-empty bins."""
    return max((abs(acc - conf) for _, _, acc, conf in _bins(probs, labels, n_bins)), default=0.0)


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    onehot = np.eye(probs.shape[1])[labels]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], _EPS, None)).mean())


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float((probs.argmax(axis=1) == labels).mean())


def all_metrics(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> dict[str, float]:
    labels = np.asarray(labels)
    return {
        "accuracy": accuracy(probs, labels),
        "ece": ece(probs, labels, n_bins),
        "mce": mce(probs, labels, n_bins),
        "brier": brier(probs, labels),
        "nll": nll(probs, labels),
    }


def fit_temperature(logits: np.ndarray | list[np.ndarray], labels: np.ndarray | list, *,
                    low: float = 0.05, high: float = 20.0, iters: int = 100) -> float:
    """The temperature T > 0 minimising NLL of softmax(logits / T); ``logits`` and
    ``labels`` may be lists of groups with different numbers of classes (retrieval: one
    group per language, its candidates as classes), whose NLL is pooled over their rows.

    NLL is convex in 1/T, so a golden-section search over log T in [low, high] finds it
    deterministically, with no optimizer state.
    """
    groups = (list(zip(logits, labels)) if isinstance(logits, list)
              else [(logits, labels)])
    groups = [(g, np.asarray(y)) for g, y in groups if len(y)]
    total = sum(len(y) for _, y in groups)

    def loss(log_t: float) -> float:
        return math.fsum(nll(softmax(g, math.exp(log_t)), y) * len(y) for g, y in groups) / total

    a, b = math.log(low), math.log(high)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = loss(c), loss(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = loss(d)
    return math.exp((a + b) / 2)
