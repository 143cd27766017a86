"""Presets: named YAML files that describe a trial (and, later, a sweep)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from spaces.config import ConfigError, TrialConfig, apply_overrides
from spaces.sweep import SweepConfig

_SECTIONS = ("description", "trial", "search")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    #: the base trial config, as a plain dict
    trial: Mapping[str, Any]
    #: the sweep description (used by ``search``)
    search: Mapping[str, Any] = field(default_factory=dict)

    def sweep_config(self, **changes: Any) -> SweepConfig:
        """The preset's sweep config, with keyword changes (e.g. ``trials=20``)."""
        return SweepConfig.from_dict({**self.search, **changes})

    def trial_config(self, overrides: Iterable[str] = ()) -> TrialConfig:
        """The preset's trial config with ``key=value`` overrides applied and validated."""
        return TrialConfig.from_dict(apply_overrides(self.trial, overrides))


def preset_names() -> tuple[str, ...]:
    """The presets shipped with xstilts."""
    folder = resources.files("spaces.presets")
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")))


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
            raise KeyError(
                f"unknown preset {name_or_path!r}; shipped presets: {', '.join(preset_names())} "
                "(or give a path to a .yaml file)"
            )
        text = resources.files("spaces.presets").joinpath(f"{name_or_path}.yaml").read_text()
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
    trial = data.get("trial") or {}
    if not isinstance(trial, Mapping):
        problems.append(f"preset {name!r}: 'trial' must be a mapping of trial-config keys")
    if problems:
        raise ConfigError(problems)
    if not isinstance(data.get("search") or {}, Mapping):
        raise ConfigError([f"preset {name!r}: 'search' must be a mapping of sweep keys"])
    # validate now: a bad preset fails before anything runs
    TrialConfig.from_dict(trial)
    SweepConfig.from_dict(data.get("search") or {})
    return Preset(name=name, description=str(data.get("description", "")),
                  trial=dict(trial), search=dict(data.get("search") or {}))
