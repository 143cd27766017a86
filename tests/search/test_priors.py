"""Priors from the similarity estimates: the first trials of a sweep are the single tasks and
mixes the estimates rank highest, enqueued in Optuna (``search.priors``)."""

from __future__ import annotations

import pandas as pd
import pytest

from search.priors import prior_points
from search.searcher import make_searcher
from spaces.presets import load_preset
from spaces.space import suggested_config

RANKED = pd.Series({"demo-match": 0.3, "demo-tags": 0.2, "demo-topic": 0.1, "demo-polarity": 0.0})


def _flags(point):
    return sorted(k.removeprefix("task/") for k, on in point.items() if on)


def test_prior_points_are_the_top_single_tasks_then_the_top_mixes():
    sweep = load_preset("demo").sweep_config()
    points = prior_points(sweep, RANKED)
    assert [_flags(p) for p in points] == [
        ["demo-match"], ["demo-tags"], ["demo-topic"],
        ["demo-match", "demo-tags"], ["demo-match", "demo-tags", "demo-topic"]]
    assert all(set(p) == {f"task/{t}" for t in sweep.space.tasks} for p in points)
    # never more than the budget; a task without an estimate comes last
    assert len(prior_points(sweep.replace(trials=2), RANKED)) == 2
    partial = prior_points(sweep, RANKED.drop("demo-match"))
    assert _flags(partial[0]) == ["demo-tags"] and _flags(partial[3]) == ["demo-tags",
                                                                            "demo-topic"]


def test_priors_change_the_first_suggestions_and_the_study_shows_them():
    sweep = load_preset("demo").sweep_config()
    points = prior_points(sweep, RANKED)
    base = load_preset("demo").trial_config()
    plain, primed = make_searcher(sweep), make_searcher(sweep, priors=points)
    for i in range(len(points)):
        plain.suggest(f"p{i}")
        primed.suggest(f"q{i}")

    def tasks(searcher):  # the task subsets of the study's trials, as the trials get them
        return [sorted(suggested_config(base, t.params, sweep.space).intermediate_tasks)
                for t in searcher.study.trials]

    assert tasks(primed) == [_flags(p) for p in points]
    assert tasks(plain) != [_flags(p) for p in points]
    # in the Optuna study: each of the first trials carries its enqueued flags as fixed params
    trials = primed.study.trials
    assert len(trials) == len(points)
    for trial, point in zip(trials, points):
        assert trial.system_attrs["fixed_params"] == point
        assert {k: v for k, v in trial.params.items() if k.startswith("task/")} == \
            {k: v for k, v in point.items() if k in trial.params}
    # after them, TPE suggests on its own
    nxt = primed.suggest("q-next")
    assert "fixed_params" not in primed.study.trials[-1].system_attrs and nxt


def test_priors_are_refused_in_a_designed_sweep():
    from spaces.config import ConfigError

    with pytest.raises(ConfigError, match="priors: a designed sweep"):
        load_preset("q-similarity").sweep_config(priors="similarity")
    with pytest.raises(ConfigError, match="priors='tpe' is unknown; choose one of: none, similarity"):
        load_preset("demo").sweep_config(priors="tpe")
