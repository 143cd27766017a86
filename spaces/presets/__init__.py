"""Presets: named YAML files that describe a trial, a sweep, and per-target recipes.

A preset has up to four sections: ``description``; ``trial``, the base trial
config; ``search``, the sweep (``spaces.sweep.SweepConfig``); and ``targets``,
trial-key overrides per target task (a recipe: epochs, batch size) that apply
when that task is the trial's target. Precedence, lowest first: ``trial``, the
target's entry in ``targets``, the user's ``--set`` overrides.

A sweep's space fixes some keys itself (``trial_config`` in ``spaces.space``
takes the batch size and target epochs from it), so a value set by the target's
recipe or by the user's ``--set`` also replaces the space's value for that key
when the space holds a single value there (a fixed setting, not a search); a key
the space searches stays the search's. ``--set search.space.KEY=...`` wins over
both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from spaces.config import ConfigError, TrialConfig, apply_overrides
from spaces.space import SpaceSpec
from spaces.sweep import SweepConfig
from spaces.tasks import task_names
from spaces.errors import UnknownNameError

_SECTIONS = ("description", "trial", "search", "targets")
_TRIAL_KEYS = tuple(f.name for f in dataclasses.fields(TrialConfig))
_DEFAULT_TARGET = TrialConfig.target


def _fixed_choice(space: SpaceSpec, key: str, value: Any) -> list[Any] | None:
    return [value] if len(getattr(space, key)) == 1 else None


def _fixed_range(space: SpaceSpec, key: str, value: Any) -> list[Any] | None:
    low, high = getattr(space, key)[:2]
    return [value, value, *getattr(space, key)[2:]] if low == high else None


#: trial keys that a sweep's space sets on every trial: trial key -> (space key, the
#: space's entry fixing it at a value, or None where the space searches that key)
_SPACE_FIXES: Mapping[str, tuple[str, Callable[[SpaceSpec, str, Any], list[Any] | None]]] = {
    "batch_size": ("batch_size", _fixed_choice),
    "target_epochs": ("target_epochs", _fixed_choice),
    "model_size": ("model_sizes", _fixed_choice),
    "learning_rate": ("learning_rate", _fixed_range),
    "warmup_ratio": ("warmup_ratio", _fixed_range),
    "intermediate_steps": ("intermediate_steps", _fixed_range),
}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    #: the base trial config, as a plain dict
    trial: Mapping[str, Any]
    #: the sweep description (used by ``search``)
    search: Mapping[str, Any] = field(default_factory=dict)
    #: target task name -> trial-key overrides applied when that task is the target
    targets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def trial_config(self, overrides: Iterable[str] = ()) -> TrialConfig:
        """The trial config: ``trial``, then the target's recipe, then ``key=value`` overrides.

        The target is the one the overrides choose (``target=panx``), else the preset's.
        """
        overrides = list(overrides)
        target = apply_overrides(self.trial, overrides).get("target", _DEFAULT_TARGET)
        recipe = self.targets.get(target, {}) if isinstance(target, str) else {}
        return TrialConfig.from_dict(apply_overrides({**self.trial, **recipe}, overrides))

    def sweep_config(self, overrides: Iterable[str] = (), **changes: Any) -> SweepConfig:
        """The sweep config for a run with these trial ``overrides`` and sweep ``changes``.

        ``changes`` are sweep keys (``trials=20``); ``space`` is a mapping of the space
        keys to change (``space={"batch_size": [16]}``), the rest kept from the preset.
        Values the target's recipe or the trial overrides set replace the space's value
        where the space fixes that key (see the module docstring); ``space`` wins.
        """
        overrides = list(overrides)
        user_space = changes.pop("space", None) or {}
        if not isinstance(user_space, Mapping):
            raise ConfigError([f"search.space={user_space!r}: expected a mapping of space keys; "
                               "set one key at a time, e.g. --set search.space.batch_size=[16]"])
        space = dict(self.search.get("space") or {})
        config = self.trial_config(overrides)
        chosen = {*self.targets.get(config.target, {}), *_assigned_keys(overrides)}
        spec = SpaceSpec.from_dict(space)
        for key in sorted(chosen & set(_SPACE_FIXES)):
            space_key, fix = _SPACE_FIXES[key]
            entry = fix(spec, space_key, getattr(config, key))
            if entry is not None and entry != list(getattr(spec, space_key)):
                space[space_key] = entry
        space.update(user_space)
        return SweepConfig.from_dict({**self.search, **changes, "space": space})


def _assigned_keys(overrides: Iterable[str]) -> set[str]:
    """The trial keys ``key=value`` (or ``key.sub=value``) assignments set."""
    return {item.partition("=")[0].strip().partition(".")[0] for item in overrides}


#: the shipped presets' folders: the sweeps, and one preset per question users bring
#: (``questions/q-*.yaml``, each with a ``-paper`` variant for real data)
PRESET_FOLDERS = ("", "questions")


def _shipped() -> dict[str, Any]:
    """Shipped preset name -> its file (a ``resources`` traversable)."""
    root = resources.files("spaces.presets")
    out = {}
    for sub in PRESET_FOLDERS:
        folder = root.joinpath(sub) if sub else root
        if folder.is_dir():
            out.update({p.name[:-5]: p for p in folder.iterdir() if p.name.endswith(".yaml")})
    return out


def preset_names() -> tuple[str, ...]:
    """The presets shipped with xstilts."""
    return tuple(sorted(_shipped()))


def load_preset(name_or_path: str) -> Preset:
    """A shipped preset by name (``demo``) or a YAML file by path."""
    path = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(
                f"preset file {name_or_path!r} does not exist; give an existing YAML file "
                f"or one of the shipped presets: {', '.join(preset_names())}"
            )
        text, name, source = path.read_text(), path.stem, str(path)
    else:
        if name_or_path not in preset_names():
            raise UnknownNameError(
                f"unknown preset {name_or_path!r}; shipped presets: {', '.join(preset_names())} "
                "(or give a path to a .yaml file)"
            )
        text = _shipped()[name_or_path].read_text()
        name = source = name_or_path
    return parse_preset(text, name=name, source=source)


def parse_preset(text: str, *, name: str, source: str | None = None) -> Preset:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"preset {source or name!r} is not valid YAML ({exc}); fix the "
                           "syntax"]) from None
    if not isinstance(data, Mapping):
        raise ConfigError([f"preset {name!r} must be a YAML mapping with keys {list(_SECTIONS)}"])
    problems = [
        f"preset {name!r}: unknown section {k!r}; allowed sections: {', '.join(_SECTIONS)}"
        for k in data if k not in _SECTIONS
    ]
    trial, search, targets = (data.get(k) or {} for k in ("trial", "search", "targets"))
    if not isinstance(trial, Mapping):
        problems.append(f"preset {name!r}: 'trial' must be a mapping of trial-config keys")
    if not isinstance(search, Mapping):
        problems.append(f"preset {name!r}: 'search' must be a mapping of sweep keys")
    if not isinstance(targets, Mapping):
        problems.append(f"preset {name!r}: 'targets' must be a mapping of target task name to "
                        "trial-config keys, e.g. targets: {{panx: {{target_epochs: 10}}}}")
    if problems:
        raise ConfigError(problems)
    # validate now, everything at once: a bad preset fails before anything runs
    for check in (lambda: TrialConfig.from_dict(trial), lambda: SweepConfig.from_dict(search)):
        try:
            check()
        except ConfigError as exc:
            problems.extend(exc.problems)
    recipes = {str(t): dict(entry or {}) for t, entry in targets.items()
               if isinstance(entry or {}, Mapping)}
    problems.extend(_target_problems(name, targets))
    preset = Preset(name=name, description=str(data.get("description", "")),
                    trial=dict(trial), search=dict(search), targets=recipes)
    if not problems:  # each recipe, combined with the preset, must give a valid trial and sweep
        for target in recipes:
            try:
                preset.trial_config([f"target={target}"])
                preset.sweep_config([f"target={target}"])
            except ConfigError as exc:
                problems.extend(f"preset {name!r}: targets.{target}: {p}" for p in exc.problems)
    if problems:
        raise ConfigError(problems)
    return preset


def _target_problems(name: str, targets: Mapping[Any, Any]) -> Iterable[str]:
    known = task_names("target")
    for target, entry in targets.items():
        where = f"preset {name!r}: targets.{target}"
        if target not in known:
            yield (f"preset {name!r}: targets: {target!r} is not a target task; choose from: "
                   f"{', '.join(known)}")
        if not isinstance(entry or {}, Mapping):
            yield (f"{where} must be a mapping of trial-config keys to values, e.g. "
                   "{target_epochs: 10, batch_size: 32}")
            continue
        for key in entry or {}:
            if key == "target":
                yield (f"{where}: sets 'target', but the entry applies when {target!r} is "
                       "already the target; remove the key")
            elif key not in _TRIAL_KEYS:
                yield f"{where}: unknown key {key!r}; known trial keys: {', '.join(_TRIAL_KEYS)}"
