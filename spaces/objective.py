"""The sweep objective, written down once.

``score = mean_zs_acc - weight * mean_zs_ece``: both terms are fractions in
[0, 1], averaged (macro) over the zero-shot languages, i.e. every evaluation
language except the training language. Higher is better.
"""

from __future__ import annotations

import math
from typing import Mapping


def score(accuracy: float, ece: float, *, weight: float) -> float:
    """The scalar objective from a mean zero-shot accuracy and ECE."""
    if not (0.0 <= accuracy <= 1.0 and 0.0 <= ece <= 1.0):
        raise ValueError(
            f"accuracy={accuracy!r} and ece={ece!r} must both be fractions in [0, 1]"
        )
    return accuracy - weight * ece


def macro_mean(per_language: Mapping[str, float], *, exclude: str) -> float:
    """Macro mean over languages other than ``exclude`` (the training language)."""
    values = [v for lang, v in per_language.items() if lang != exclude]
    if not values:
        raise ValueError(
            f"no zero-shot language among {sorted(per_language)}: a target needs at least "
            f"one evaluation language other than the training language {exclude!r}"
        )
    return math.fsum(values) / len(values)
