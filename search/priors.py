"""Priors from the similarity estimates: the first trials a sweep runs.

``search.priors: similarity`` enqueues, before TPE suggests anything, the single tasks
the estimates rank highest, then the mixes of the top two and the top three
(``prior_points``), as Optuna trials with those include flags fixed and everything else
sampled. Why enqueueing rather than a prior over the include flags: Optuna's samplers
take no prior over a categorical choice (TPE's ``prior_weight`` only weighs a uniform
one), so a prior would mean a sampler of our own; enqueued trials are Optuna's own API
(``Study.enqueue_trial``, through Tune's ``points_to_evaluate``), visible in the study
(each carries its fixed parameters), and TPE learns from their results as from any
others, so a wrong prior costs at most those trials. They count towards
``startup_trials``: TPE models the space from them on.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from spaces.sweep import SweepConfig

#: single tasks enqueued first (the best ``SINGLES`` by estimate), then the mixes of the top
#: 2 .. ``MIX_UP_TO`` tasks
SINGLES = 3
MIX_UP_TO = 3


def prior_points(sweep: SweepConfig, ranked: pd.Series) -> list[dict[str, Any]]:
    """The enqueued trials' include flags (``define_space``'s ``task/<name>``), in order:
    the top ``SINGLES`` single tasks, then the top-2 and top-3 mixes; at most
    ``sweep.trials``. ``ranked``: estimates by task, best first
    (``search.similarity.task_estimates``); tasks of the space without an estimate come
    after those with one."""
    tasks = list(sweep.space.tasks)
    order = [t for t in ranked.index if t in tasks] + [t for t in tasks if t not in ranked.index]
    arms = [[t] for t in order[:SINGLES]]
    arms += [order[:k] for k in range(2, min(MIX_UP_TO, len(order)) + 1)]
    return [{f"task/{t}": t in arm for t in tasks} for arm in arms][:sweep.trials]
