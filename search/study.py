"""A sweep's trials as Optuna trials: the study of a finished or running sweep
(``study_from_sweep``, ``export_optuna``), and earlier sweeps' trials seeding a new one
(``warm_start``).

The study is rebuilt from the Parquet rows: each trial's parameters are found by
replaying the space (``spaces.space.define_space``) against its config, so they
carry the names and distributions the sweep's sampler used. Finished trials are
COMPLETE with their objective (or accuracy and ECE in a multi-objective sweep),
trials ASHA stopped are PRUNED with their intermediate values keyed by budget
(as ``search.searcher`` told Optuna) and, as ``Study.tell`` gives a pruned trial,
the last of them as value; failed ones FAIL. All of it reads the
sweep's tables only, so it works on a sweep that is still running.

A warm start (``xstilts run PRESET --warm-start STORAGE/OTHER``) replays the finished trials
of earlier sweeps against the *new* sweep's space: a trial whose configuration is a point
of the new space (every parameter the space asks for within its distribution, and the
rest of its configuration the new sweep's own, so the config hashes agree) is added to
the new study as COMPLETE (``Study.add_trials``), and its configuration, should the new
sweep draw it, is not trained again: the trial reports the earlier result and the row
records it with ``duplicate_of`` = ``STORAGE/OTHER#TRIAL_ID``. Sweeps whose scores do
not compare are refused: another xstilts version, or another objective
(``spaces.config.OBJECTIVE_KEYS``).
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import optuna
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)
from optuna.trial import TrialState

from search.query import SweepResults, load_sweep
from search.results import ResultsError, config_from_row
from spaces.config import TrialConfig
from spaces.objective import OBJECTIVE_ECE
from spaces.space import define_space

log = logging.getLogger("xstilts.study")

#: a trial's status in the trials table -> its state in the rebuilt study
STATES = {"finished": TrialState.COMPLETE, "duplicate": TrialState.COMPLETE,
          "stopped": TrialState.PRUNED, "error": TrialState.FAIL}


def _sweep(sweep: SweepResults | str) -> SweepResults:
    return load_sweep(sweep) if isinstance(sweep, str) else sweep


def sweep_plan(sweep: SweepResults):
    """The sweep's plan from its manifest; None for tables without one (by hand, copied)."""
    from search.sweep import load_plan

    try:
        return load_plan(sweep.path)
    except FileNotFoundError:
        return None


# -- the sweep as an Optuna study -------------------------------------------------------------
class Replay:
    """An Optuna-trial stand-in for ``define_space``: it answers each question from a trial's
    config and records the parameter with the distribution the sampler drew it from.
    ``fits``: every answer lies in its distribution (a trial of another space may not);
    an answer the config lacks (a weight of a mix it did not draw) is the distribution's
    first value, and ``fits`` is False."""

    def __init__(self, cfg: TrialConfig):
        self.cfg = cfg
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, BaseDistribution] = {}
        self.fits = True

    def _answer(self, name: str, dist: BaseDistribution) -> Any:
        try:
            if name.startswith("task/"):
                value: Any = name.split("/", 1)[1] in self.cfg.intermediate_tasks
            elif name.startswith("weight/"):
                value = float(self.cfg.weights[name.split("/", 1)[1]])
            else:
                value = getattr(self.cfg, name)
            if not dist._contains(dist.to_internal_repr(value)):
                raise ValueError(value)
        except (KeyError, ValueError, TypeError):
            self.fits = False
            value = dist.choices[0] if isinstance(dist, CategoricalDistribution) else dist.low
        self.params[name], self.distributions[name] = value, dist
        return value

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._answer(name, CategoricalDistribution(list(choices)))

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        return self._answer(name, FloatDistribution(low, high, log=log))

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int:
        return self._answer(name, IntDistribution(low, high, step=step))


def study_from_sweep(sweep: SweepResults | str, *,
                     storage: str | optuna.storages.BaseStorage | None = None,
                     study_name: str | None = None) -> optuna.Study:
    """The sweep's trials as an Optuna study (in memory unless ``storage`` is given), in the
    order they were recorded, each with ``user_attrs`` trial_id, config_hash and status."""
    directions, names, trials = _rebuild(_sweep(sweep))
    study = optuna.create_study(storage=storage, study_name=study_name, directions=directions,
                                load_if_exists=False)
    with warnings.catch_warnings():  # experimental since Optuna 3.2, still so in 5.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(names)
    study.add_trials(trials)
    return study


def _rebuild(sweep: SweepResults) -> tuple[list[str], list[str], list[optuna.trial.FrozenTrial]]:
    """Directions, metric names and frozen trials of a sweep's study."""
    plan = sweep_plan(sweep)
    if plan is None:
        raise ResultsError(f"{sweep.path} has no sweep manifest (xstilts-sweep.json), so its "
                           "search space is unknown; give the STORAGE/NAME folder `xstilts run` "
                           "created")
    multi = plan.sweep.mode == "multi"
    ece = OBJECTIVE_ECE[plan.base.objective_ece]  # a multi-objective sweep's second value
    trials = sweep.trials
    if len(trials):
        trials = trials.sort_values("finished_at", kind="stable")
    history = sweep.history
    steps: dict[str, dict[int, float]] = {}
    if len(history):
        for tid, budget, value in zip(history["trial_id"], history["budget"], history["objective"]):
            if value == value and value is not None:
                steps.setdefault(tid, {})[int(budget)] = float(value)
    frozen = []
    for row in trials.to_dict("records"):
        state = STATES.get(row["status"])
        if state is None:
            continue
        replay = Replay(TrialConfig.from_dict(config_from_row(row)))
        define_space(replay, plan.sweep.space)
        values = None
        intermediate = {} if multi else dict(steps.get(row["trial_id"], {}))
        if state == TrialState.COMPLETE:  # its last report is its value, not intermediate
            intermediate.pop(row["budget"], None)
            values = _values(row, multi=multi, ece=ece)
            if values is None:
                state = TrialState.FAIL  # a finished row without its metrics
        elif state == TrialState.PRUNED and intermediate:  # as Study.tell gives a pruned trial
            values = [intermediate[max(intermediate)]]
        frozen.append(optuna.trial.create_trial(
            state=state, values=values, params=replay.params,
            distributions=replay.distributions, intermediate_values=intermediate,
            user_attrs={"trial_id": row["trial_id"], "config_hash": row["config_hash"],
                        "status": row["status"]}))
    if multi:
        return ["maximize", "minimize"], ["zs_accuracy", ece], frozen
    return ["maximize"], ["objective"], frozen


def _values(row: Mapping[str, Any], *, multi: bool, ece: str) -> list[float] | None:
    """A finished row's value(s) in its study: accuracy and the ECE ``ece`` names in a
    multi-objective sweep, else the objective; None where one is missing."""
    values = [row["zs_accuracy"], row[ece]] if multi else [row["objective"]]
    return None if any(v is None or v != v for v in values) else values


def export_optuna(sweep: SweepResults | str, url: str, *, study_name: str | None = None) -> optuna.Study:
    """Write the sweep as a new study into the Optuna storage at ``url`` (e.g.
    ``sqlite:///sweep.db``); the study is named after the sweep unless ``study_name`` is
    given. An existing study of that name is left alone (an error says so); a failed export
    leaves no study behind."""
    sweep = _sweep(sweep)
    name = study_name or sweep.path.rstrip("/").rsplit("/", 1)[-1]
    directions, names, trials = _rebuild(sweep)  # every row checked before storage is touched
    try:
        storage = optuna.storages.get_storage(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's many errors for a URL it cannot use
        raise ValueError(f"cannot open the Optuna storage {url!r} ({type(exc).__name__}: {exc}); "
                         "give a URL such as sqlite:///sweep.db") from None
    if name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        raise FileExistsError(f"{url} already holds a study named {name!r}; export under another "
                              "name (--study-name) or into another storage")
    study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
        study.add_trials(trials)
    except BaseException:
        optuna.delete_study(study_name=name, storage=storage)
        raise
    return study


# -- warm start: earlier sweeps' finished trials in a new sweep --------------------------------
@dataclass(frozen=True)
class WarmStart:
    """What earlier sweeps give a new one (``warm_start``)."""

    #: finished trials that are points of the new space, COMPLETE, each with ``user_attrs``
    #: ``xstilts.warm_start`` (``STORAGE/OTHER#TRIAL_ID``) and ``config_hash``
    trials: tuple[optuna.trial.FrozenTrial, ...] = ()
    #: config hash -> what its finished trial reported, with ``reused_from``
    #: (``STORAGE/OTHER#TRIAL_ID``), ``zs_ece_ts`` and ``target_step``: a trial of the new
    #: sweep with that config reports it instead of training
    finished: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: per earlier sweep: its finished trials and, of them, those that fit the new space
    counts: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def summary(self) -> str:
        return "; ".join(f"{src}: {fit} of {n} finished trials fit this sweep's space"
                         for src, (n, fit) in self.counts.items())


def comparable_sources(plan, *, missing_ok: bool = False) -> list[str]:
    """The earlier sweeps ``plan`` (a ``search.sweep.SweepPlan``) names in ``warm_start``,
    checked from their manifests alone (``xstilts run`` checks before it starts anything).

    ConfigError for a source that is the sweep itself, was written by another xstilts
    version, or scores trials by another objective (``spaces.config.OBJECTIVE_KEYS``);
    FileNotFoundError for a path without a sweep, unless ``missing_ok`` (a resumed sweep:
    its study holds what the source gave it; a configuration only that source finished is
    then trained), which warns and leaves the source out."""
    from search.results import versions
    from search.sweep import plan_from_manifest, read_manifest
    from spaces.config import ConfigError, OBJECTIVE_KEYS

    ours = json.loads(versions()).get("xstilts")
    out = []
    for source in plan.warm_start:
        source = source.rstrip("/")
        if source == plan.path:
            raise ConfigError([f"--warm-start {source}: that is the sweep being started; name "
                               "earlier sweeps (to give this one more trials: xstilts resume "
                               f"{source} --trials N)"])
        try:
            body = read_manifest(source)
        except FileNotFoundError as exc:
            if not missing_ok:
                raise
            log.warning("warm start: %s; its results are not reused", exc)
            continue
        other = plan_from_manifest(source, body)
        theirs = (body.get("versions") or {}).get("xstilts")
        if theirs != ours:
            raise ConfigError([f"--warm-start {source}: its results were written by xstilts "
                               f"{theirs}, this is xstilts {ours}; scores of different versions "
                               "are not compared. Run the sweep again with this version, or "
                               "warm-start from a sweep it wrote"])
        differ = [k for k in sorted(OBJECTIVE_KEYS)
                  if getattr(other.base, k) != getattr(plan.base, k)]
        if differ:
            what = ", ".join(f"{k}: {getattr(other.base, k)!r} there, {getattr(plan.base, k)!r} "
                             "here" for k in differ)
            raise ConfigError([f"--warm-start {source}: it scores trials by another objective "
                               f"({what}); warm-start only from sweeps with the same target, "
                               "evaluation and objective settings"])
        out.append(source)
    return out


def warm_start(plan, *, missing_ok: bool = False) -> WarmStart:
    """The warm start of ``plan`` (a ``search.sweep.SweepPlan``): the finished trials of
    the earlier sweeps its ``warm_start`` names (``comparable_sources``, whose errors it
    raises) that are points of its space, read from their trials tables."""
    from search.results import read_table, reported_metrics
    from spaces.space import suggested_config

    trials: list[optuna.trial.FrozenTrial] = []
    finished: dict[str, dict[str, Any]] = {}
    counts: dict[str, tuple[int, int]] = {}
    ece = OBJECTIVE_ECE[plan.base.objective_ece]
    for source in comparable_sources(plan, missing_ok=missing_ok):
        table = read_table(source, "trials")
        rows = [] if table is None else [r for r in table.to_pylist() if r["status"] == "finished"]
        fit = 0
        for row in rows:
            values = _values(row, multi=plan.sweep.mode == "multi", ece=ece)
            if values is None:
                continue
            cfg = TrialConfig.from_dict(config_from_row(row))
            replay = Replay(cfg)
            define_space(replay, plan.sweep.space)
            if not replay.fits or suggested_config(plan.base, replay.params,
                                               plan.sweep.space).config_hash() != cfg.config_hash():
                continue  # not a point of this space, or other settings outside it
            ref = row["duplicate_of"] if "#" in (row["duplicate_of"] or "") \
                else f"{source}#{row['trial_id']}"  # reused there too: the trial that ran
            fit += 1
            trials.append(optuna.trial.create_trial(
                state=TrialState.COMPLETE, values=values, params=replay.params,
                distributions=replay.distributions,
                user_attrs={"xstilts.warm_start": ref, "config_hash": row["config_hash"]}))
            finished.setdefault(cfg.config_hash(), {  # both ECEs are in reported_metrics
                **reported_metrics(row), "reused_from": ref, "target_step": row["target_step"]})
        counts[source] = (len(rows), fit)
    return WarmStart(trials=tuple(trials), finished=finished, counts=counts)
