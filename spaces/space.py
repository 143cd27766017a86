"""The search space: a define-by-run function of an Optuna trial.

Parameters have stable names, so a sweep's history stays readable when the
preset's task pool changes (optuna#372):

    task/<name>        include flag per intermediate task (bool); ``task/xnli@de`` for
                       a task's training data in another language (``spaces.tasks``)
    mixing             family, only when two or more tasks are included
    weight/<name>      softmax logit, only for included tasks of a softmax mix
    mixing_temperature only for the temperature family
    model_size, learning_rate, batch_size, warmup_ratio,
    intermediate_steps, target_epochs      when the spec gives a choice

At least one task is always included, without costing a trial: the last
task's flag is asked only when an earlier task is already in; otherwise the
last task is included (a conditional, so model-based samplers see it as such).
Subsets are flags plus conditional logits rather than one categorical over
all 2^n − 1 subsets, which model-based samplers cannot generalise over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Protocol

from spaces.config import MIXING_FAMILIES, ConfigError, TrialConfig
from spaces.models import MODEL_SIZES
from spaces.tasks import intermediate_problem, task_names


class SuggestTrial(Protocol):
    """What the space needs of an Optuna trial (``optuna.Trial``, ``FixedTrial``)."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...
    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int: ...


@dataclass(frozen=True)
class SpaceSpec:
    """What a sweep searches over; ranges are [low, high], choices are lists."""

    tasks: tuple[str, ...] = ("demo-polarity", "demo-topic", "demo-match")
    mixing: tuple[str, ...] = MIXING_FAMILIES
    weight_range: tuple[float, float] = (-3.0, 3.0)
    temperature_range: tuple[float, float] = (1.0, 5.0)
    model_sizes: tuple[str, ...] = ("tiny",)
    learning_rate: tuple[float, float] = (5e-4, 5e-3)
    batch_size: tuple[int, ...] = (32,)
    warmup_ratio: tuple[float, float] = (0.0, 0.2)
    intermediate_steps: tuple[int, int, int] = (200, 800, 200)  # low, high, step
    target_epochs: tuple[float, ...] = (8.0,)
    #: trial seeds to draw from (``seed``); empty or one: the base config's seed. A designed
    #: sweep (``search.arms``) runs every arm once per seed
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SpaceSpec":
        known = {f for f in cls.__dataclass_fields__}
        unknown = [k for k in data if k not in known]
        if unknown:
            raise ConfigError([f"search.space: unknown key {k!r}; known keys: {', '.join(known)}"
                               for k in unknown])
        kwargs = {}
        for k, v in data.items():
            if isinstance(v, str):
                v = [v]
            if not isinstance(v, (list, tuple)):
                raise ConfigError([f"search.space.{k}={v!r}: expected a list (choices or [low, high])"])
            kwargs[k] = tuple(v)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(getattr(self, k)) for k in self.__dataclass_fields__}


def _problems(s: SpaceSpec) -> Iterable[str]:
    known = task_names("intermediate")
    if not s.tasks:
        yield f"search.space.tasks is empty; list at least one of: {', '.join(known)}"
    for t in s.tasks:
        problem = intermediate_problem(t)
        if problem:
            yield f"search.space.tasks: {problem}"
    if len(set(s.tasks)) != len(s.tasks):
        yield "search.space.tasks lists a task twice; list each once"
    for m in s.mixing:
        if m not in MIXING_FAMILIES:
            yield f"search.space.mixing: {m!r} is unknown; choose from: {', '.join(MIXING_FAMILIES)}"
    for m in s.model_sizes:
        if m not in MODEL_SIZES:
            yield f"search.space.model_sizes: {m!r} is unknown; choose from: {', '.join(MODEL_SIZES)}"
    for name in ("mixing", "model_sizes", "batch_size", "target_epochs"):
        if not getattr(s, name):
            yield f"search.space.{name} is empty; give at least one choice"
    for name, positive in (("weight_range", False), ("temperature_range", True),
                           ("learning_rate", True), ("warmup_ratio", False)):
        r = getattr(s, name)
        if (len(r) != 2 or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in r)
                or r[0] > r[1] or (positive and r[0] <= 0)):
            yield (f"search.space.{name}={list(r)!r}: expected [low, high] with finite numbers, "
                   f"low <= high{' and low > 0' if positive else ''}")
    st = s.intermediate_steps
    if len(st) != 3 or not all(isinstance(x, int) for x in st) or st[0] < 0 or st[0] > st[1] or st[2] < 1:
        yield (f"search.space.intermediate_steps={list(st)!r}: expected [low, high, step], "
               "integers with 0 <= low <= high and step >= 1")
    if any(not isinstance(b, int) or b < 1 for b in s.batch_size):
        yield f"search.space.batch_size={list(s.batch_size)!r}: expected positive integers"
    if any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in s.seeds) \
            or len(set(s.seeds)) != len(s.seeds):
        yield (f"search.space.seeds={list(s.seeds)!r}: expected distinct integers >= 0, "
               "e.g. [0, 1, 2]")


def define_space(trial: SuggestTrial, spec: SpaceSpec) -> None:
    """Suggest one point of ``spec`` on ``trial`` (no I/O, fast)."""
    included = []
    for i, task in enumerate(spec.tasks):
        last = i == len(spec.tasks) - 1
        if last and not included:
            included.append(task)  # never an empty subset
        elif trial.suggest_categorical(f"task/{task}", [True, False]):
            included.append(task)
    if len(included) > 1:
        family = _choose(trial, "mixing", spec.mixing)
        if family == "softmax":
            for task in included:
                trial.suggest_float(f"weight/{task}", *spec.weight_range)
        elif family == "temperature":
            trial.suggest_float("mixing_temperature", *spec.temperature_range)
    _choose(trial, "model_size", spec.model_sizes)
    trial.suggest_float("learning_rate", *spec.learning_rate, log=True)
    _choose(trial, "batch_size", spec.batch_size)
    if spec.warmup_ratio[0] < spec.warmup_ratio[1]:
        trial.suggest_float("warmup_ratio", *spec.warmup_ratio)
    low, high, step = spec.intermediate_steps
    if low < high:
        trial.suggest_int("intermediate_steps", low, high, step=step)
    _choose(trial, "target_epochs", spec.target_epochs)
    _choose(trial, "seed", spec.seeds or (None,))


def _choose(trial: SuggestTrial, name: str, choices: tuple) -> Any:
    return trial.suggest_categorical(name, list(choices)) if len(choices) > 1 else choices[0]


def suggested_config(base: TrialConfig, params: Mapping[str, Any], spec: SpaceSpec) -> TrialConfig:
    """The full trial config of a suggestion: ``base`` with the searched values applied.

    ``params`` may be flat (``task/x``) or nested as Ray Tune passes it
    (``{"task": {"x": True}}``).
    """
    flat = _flatten(params)
    included = [t for t in spec.tasks if flat.get(f"task/{t}", False)]
    if not included:
        included = [spec.tasks[-1]]
    changes: dict[str, Any] = {"intermediate_tasks": included, "weights": {}}
    if len(included) > 1:
        changes["mixing"] = flat.get("mixing", spec.mixing[0])
        changes["weights"] = {t: flat[f"weight/{t}"] for t in included if f"weight/{t}" in flat}
    changes["model_size"] = flat.get("model_size", spec.model_sizes[0])
    changes["batch_size"] = flat.get("batch_size", spec.batch_size[0])
    changes["target_epochs"] = flat.get("target_epochs", spec.target_epochs[0])
    if spec.seeds:
        changes["seed"] = flat.get("seed", spec.seeds[0])
    for key in ("learning_rate", "warmup_ratio", "intermediate_steps", "mixing_temperature"):
        if key in flat:
            changes[key] = flat[key]
    if spec.warmup_ratio[0] == spec.warmup_ratio[1]:
        changes["warmup_ratio"] = spec.warmup_ratio[0]
    if spec.intermediate_steps[0] == spec.intermediate_steps[1]:
        changes["intermediate_steps"] = spec.intermediate_steps[0]
    return base.replace(**changes)


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "/"))
        else:
            out[key] = v
    return out
