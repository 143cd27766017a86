"""The sweep configuration: the ``search:`` section of a preset, validated."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from spaces.config import ConfigError
from spaces.space import SpaceSpec

MODES: tuple[str, ...] = ("scalar", "multi")
SAMPLERS: tuple[str, ...] = ("tpe", "random")
#: what a trial runs: the model (Ray Train, the real thing) or the surrogate (no model,
#: a known function of the same config; for benchmarks and tests of the machinery at scale)
TRAINABLES: tuple[str, ...] = ("model", "surrogate")
#: what seeds the sampler before it has results: nothing, or the similarity estimates
#: (``search.priors``: the most promising single tasks and mixes are enqueued first)
PRIORS: tuple[str, ...] = ("none", "similarity")


@dataclass(frozen=True)
class SweepConfig:
    """How a sweep runs: budget, concurrency, sampler, scheduler, space."""

    #: trials to finish (including ones stopped early by ASHA)
    trials: int = 12
    #: trials running at once; small, so TPE learns between suggestions (ray#14770)
    concurrency: int = 2
    #: seeds the Optuna sampler
    seed: int = 0
    #: scalar: maximise score; multi: maximise zs_accuracy and minimise zs_ece (Pareto)
    mode: str = "scalar"
    sampler: str = "tpe"
    #: random trials before TPE models the space
    startup_trials: int = 4
    #: ASHA on the scalar score: its first rung, in budget steps (``spaces.objective.budget``),
    #: then every ``asha_reduction`` times further; 0 grace disables early stopping
    asha_grace: int = 10
    asha_reduction: float = 2.0
    #: early stopping over the whole trial: the budget counts phase-2 and phase-3 steps and
    #: a trial reports a target probe at the rungs that fall in phase 2 (``trainables.probe``);
    #: false: the budget is the phase-3 step, and phase 2 always runs to its end
    two_phase: bool = True
    #: finished trials whose model weights are kept (the best by score); the checkpoints
    #: of the others, and of stopped trials, are deleted once the results record them
    keep_models: int = 5
    #: retries of a trial after a transient fault (CUDA OOM, a lost node); each
    #: retry continues from the trial's last checkpoint. NaN losses and bad data fail at once.
    max_failures: int = 2
    space: SpaceSpec = field(default_factory=SpaceSpec)
    #: a designed sweep instead of a search: each arm (a subset of the space's tasks) runs
    #: once per seed of ``space.seeds`` and model size of ``space.model_sizes``, in order
    #: (enqueued in Optuna, ``design_points``); ``trials`` must be arms x seeds x sizes.
    #: The rest of a trial's config comes from the space, which a designed preset fixes
    #: (one mixing family, one learning rate, ...)
    arms: tuple[tuple[str, ...], ...] = ()
    trainable: str = "model"
    #: surrogate trials (``trainables.surrogate``): seconds the space's longest trial lasts;
    #: a trial lasts in proportion to the steps it runs (phase 2 and phase 3), so one that
    #: ASHA stops early takes less time
    surrogate_seconds: float = 1.0
    #: surrogate trials: reports evenly spaced over phase 3, the last at its end, besides
    #: the rungs (as a model trial's ``trial.eval_every``); 1: at the rungs and the end only
    surrogate_reports: int = 1
    #: ``similarity``: the sweep's first trials are the single tasks and mixes the
    #: similarity estimates rank highest (``search.priors``), read from
    #: ``STORAGE/NAME/similarity.parquet`` or computed there first; ``none``: TPE alone
    priors: str = "none"
    #: compute the similarity estimates before the first trial where the sweep has none
    #: (``priors: similarity`` does too): a question about similarity (q-similarity) has
    #: its estimates beside the trials that measure transfer
    similarity: bool = False
    #: similarity estimates (``xstilts similarity``, ``trainables.similarity``): steps of
    #: the short training on each intermediate task, and English target training examples
    #: whose features are scored
    similarity_steps: int = 100
    similarity_examples: int = 2000
    #: surrogate sweeps: the similarity estimate of a task is its true gain plus
    #: N(0, similarity_noise) (``trainables.surrogate.surrogate_similarity``): a signal of
    #: known quality for benchmarks of the priors
    similarity_noise: float = 0.02

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SweepConfig":
        known = [f for f in cls.__dataclass_fields__]
        problems = [f"search: unknown key {k!r}; known keys: {', '.join(known)}"
                    for k in data if k not in known]
        if problems:
            raise ConfigError(problems)
        kwargs = dict(data)
        if "space" in kwargs:
            kwargs["space"] = SpaceSpec.from_dict(kwargs["space"] or {})
        if "arms" in kwargs:
            arms = kwargs["arms"] or []
            if not isinstance(arms, (list, tuple)) or not all(
                    isinstance(a, (list, tuple)) and all(isinstance(t, str) for t in a)
                    for a in arms):
                raise ConfigError([f"search.arms={arms!r}: expected a list of task lists, e.g. "
                                   "[[mnli], [qqp], [mnli, qqp]]"])
            kwargs["arms"] = tuple(tuple(a) for a in arms)
        for key in ("trials", "concurrency", "seed", "startup_trials", "asha_grace", "keep_models",
                    "max_failures", "surrogate_reports", "similarity_steps",
                    "similarity_examples"):
            if key in kwargs and (isinstance(kwargs[key], bool) or not isinstance(kwargs[key], int)):
                problems.append(f"search.{key}={kwargs[key]!r}: expected an integer")
        if problems:
            raise ConfigError(problems)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "space"}
        return {**out, "space": self.space.to_dict()}

    def rungs(self, total: int) -> list[int]:
        """The budgets below ``total`` at which ASHA judges a trial: ``asha_grace ·
        asha_reduction^k`` (Ray's ``_Bracket`` milestones), none when early stopping is off.
        A trial evaluates and reports at each, and at its end."""
        out: list[int] = []
        k = 0
        while self.asha_grace > 0:
            rung = math.ceil(self.asha_grace * self.asha_reduction ** k - 1e-9)
            if rung >= total:
                break
            out.append(rung)
            k += 1
        return out

    def replace(self, **changes: Any) -> "SweepConfig":
        d = self.to_dict()
        d.update(changes)
        return SweepConfig.from_dict(d)


def design_points(s: SweepConfig) -> list[dict[str, Any]]:
    """A designed sweep's trials as Optuna parameters (``define_space``'s names): every arm
    at every model size of the space, seed by seed: the task flags, and where the space
    has several, the model size and the seed."""
    seeds = s.space.seeds if len(s.space.seeds) > 1 else (None,)
    sizes = s.space.model_sizes if len(s.space.model_sizes) > 1 else (None,)
    return [{**{f"task/{t}": t in arm for t in s.space.tasks},
             **({"model_size": size} if size is not None else {}),
             **({"seed": seed} if seed is not None else {})}
            for seed in seeds for size in sizes for arm in s.arms]  # a cut sweep keeps pairs


def _problems(s: SweepConfig) -> Iterable[str]:
    if s.trials < 1:
        yield f"trials={s.trials}: expected a budget of at least 1 trial"
    for arm in s.arms:
        unknown = [t for t in arm if t not in s.space.tasks]
        if not arm or unknown:
            yield (f"search.arms: {list(arm)!r} must be a non-empty subset of search.space.tasks "
                   f"({', '.join(s.space.tasks)})")
    if len(set(s.arms)) != len(s.arms):
        yield "search.arms lists an arm twice; list each once"
    n = len(s.arms) * max(1, len(s.space.seeds)) * len(s.space.model_sizes)
    if s.arms and s.trials != n:
        yield (f"trials={s.trials}: a designed sweep runs each of its {len(s.arms)} arms once "
               f"per seed ({max(1, len(s.space.seeds))}) and model size "
               f"({len(s.space.model_sizes)}); set trials: {n}")
    if s.arms and s.asha_grace > 0:
        yield (f"asha_grace={s.asha_grace}: a designed sweep compares its arms at their full "
               "budget; set asha_grace: 0 (no early stopping)")
    if s.concurrency < 1:
        yield f"concurrency={s.concurrency}: expected at least 1 trial at a time"
    if s.mode not in MODES:
        yield f"mode={s.mode!r} is unknown; choose one of: {', '.join(MODES)}"
    if s.sampler not in SAMPLERS:
        yield f"sampler={s.sampler!r} is unknown; choose one of: {', '.join(SAMPLERS)}"
    if s.startup_trials < 0:
        yield f"startup_trials={s.startup_trials}: expected 0 or more"
    if s.max_failures < 0:
        yield f"max_failures={s.max_failures}: expected 0 (no retries) or more"
    if s.trainable not in TRAINABLES:
        yield f"trainable={s.trainable!r} is unknown; choose one of: {', '.join(TRAINABLES)}"
    if not (isinstance(s.surrogate_seconds, (int, float)) and math.isfinite(s.surrogate_seconds)
            and s.surrogate_seconds >= 0):
        yield f"surrogate_seconds={s.surrogate_seconds!r}: expected a number of seconds >= 0"
    if s.surrogate_reports < 1:
        yield (f"surrogate_reports={s.surrogate_reports}: expected at least 1 report in phase 3 "
               "(1: at the trial's end only)")
    if s.priors not in PRIORS:
        yield f"priors={s.priors!r} is unknown; choose one of: {', '.join(PRIORS)}"
    if s.priors != "none" and s.arms:
        yield ("priors: a designed sweep runs its arms in its own order; set priors: none "
               "(or drop search.arms to search with priors)")
    if s.similarity_steps < 0 or s.similarity_examples < 2:
        yield (f"similarity_steps={s.similarity_steps}, similarity_examples="
               f"{s.similarity_examples}: expected steps >= 0 and at least 2 examples")
    if not (isinstance(s.similarity_noise, (int, float)) and math.isfinite(s.similarity_noise)
            and s.similarity_noise >= 0):
        yield f"similarity_noise={s.similarity_noise!r}: expected a standard deviation >= 0"
    if s.keep_models < 0:
        yield f"keep_models={s.keep_models}: expected 0 (keep no model) or more finished trials"
    if not isinstance(s.similarity, bool):
        yield f"similarity={s.similarity!r}: expected true or false"
    if not isinstance(s.two_phase, bool):
        yield f"two_phase={s.two_phase!r}: expected true or false"
    if s.asha_grace < 0:
        yield f"asha_grace={s.asha_grace}: expected 0 (off) or a positive step count"
    if not (isinstance(s.asha_reduction, (int, float)) and math.isfinite(s.asha_reduction)
            and s.asha_reduction > 1):
        yield f"asha_reduction={s.asha_reduction!r}: expected a number > 1"
