"""``xstilts run PRESET --warm-start STORAGE/OTHER``: an earlier sweep's finished trials seed
the new study, and configurations it finished are reused, not trained again."""

from __future__ import annotations

import json
from dataclasses import replace

import optuna
import pytest

from search.cli import main
from search.results import reused_details, write_table
from search.searcher import make_searcher
from search.study import warm_start
from search.sweep import MANIFEST, SweepPlan, load_plan, write_manifest
from spaces.presets import load_preset
from tests.search.sweeps import SURROGATE, trials_by_id

#: a designed sweep of surrogate trials: every arm x seed is one known configuration
DESIGNED = [*SURROGATE, "--set", "search.similarity=false", "--set", "search.space.seeds=[0, 1]"]


@pytest.mark.ray
def test_warm_start_reuses_finished_configs_and_seeds_the_study(ray_local, tmp_path, capsys):
    earlier = str(tmp_path / "earlier")
    assert main(["run", "q-similarity", "--storage", str(tmp_path), "--name", "earlier",
                 *DESIGNED, "--set", "search.arms=[[demo-polarity], [demo-topic]]",
                 "--set", "search.trials=4"]) == 0
    before = trials_by_id(earlier)
    assert len(before) == 4 and {r["status"] for r in before.values()} == {"finished"}
    manifest = (tmp_path / "earlier" / MANIFEST).read_text()

    later = str(tmp_path / "later")
    capsys.readouterr()
    assert main(["run", "q-similarity", "--storage", str(tmp_path), "--name", "later",
                 "--warm-start", earlier, *DESIGNED,
                 "--set", "search.arms=[[demo-polarity], [demo-topic], [demo-match]]",
                 "--set", "search.trials=6"]) == 0
    assert f"{earlier}: 4 of 4 finished trials fit this sweep's space" in capsys.readouterr().out
    rows = trials_by_id(later)
    assert len(rows) == 6 and {r["status"] for r in rows.values()} == {"finished"}
    by_hash = {r["config_hash"]: r for r in before.values()}
    reused = [r for r in rows.values() if r["duplicate_of"]]
    trained = [r for r in rows.values() if not r["duplicate_of"]]
    # the four configurations the earlier sweep finished: its results, nothing trained
    assert sorted(r["config_hash"] for r in reused) == sorted(by_hash)
    for r in reused:
        source = by_hash[r["config_hash"]]
        assert r["duplicate_of"] == f"{earlier}#{source['trial_id']}"
        assert (r["objective"], r["zs_accuracy"], r["zs_ece"], r["budget"]) == \
            (source["objective"], source["zs_accuracy"], source["zs_ece"], source["budget"])
        assert r["wall_seconds"] < 0.2  # a surrogate trial of 0.2 s was not run
    # the new arm was trained, once per seed
    assert [r["config/intermediate_tasks"] for r in trained] == [["demo-match"]] * 2
    assert all(r["wall_seconds"] >= 0.15 for r in trained)
    # the earlier sweep is read, never written
    assert trials_by_id(earlier) == before
    assert (tmp_path / "earlier" / MANIFEST).read_text() == manifest
    assert json.loads((tmp_path / "later" / MANIFEST).read_text())["warm_start"] == [earlier]

    # the model-based sampler of an open sweep over the same space starts from them: its
    # study holds the earlier trials before its first suggestion, which TPE draws from a
    # model of them (the same seed without them draws its first point at random)
    plan = load_plan(later)
    open_sweep = plan.sweep.replace(arms=(), trials=10, startup_trials=4, sampler="tpe")
    warm = warm_start(replace(plan, sweep=open_sweep))  # the manifest keeps the source
    assert [t.user_attrs["xstilts.warm_start"] for t in warm.trials] == \
        [f"{earlier}#{r['trial_id']}" for r in before.values()]
    seeded = make_searcher(open_sweep, earlier=warm.trials)
    cold = make_searcher(open_sweep)
    study = seeded.study.trials
    assert [t.state for t in study] == [optuna.trial.TrialState.COMPLETE] * 4
    assert [t.value for t in study] == [r["objective"] for r in before.values()]
    first_seeded, first_cold = seeded.suggest("t0"), cold.suggest("t0")
    assert first_seeded != first_cold, (first_seeded, first_cold)


def test_reused_details_are_the_source_trials_language_rows(tmp_path):
    rows = [{"trial_id": "a", "task": "demo-sentiment", "language": "de", "metric": "accuracy",
             "value": 0.7},
            {"trial_id": "a", "task": "demo-news", "language": "de", "metric": "ece",
             "value": 0.1},
            {"trial_id": "b", "task": "demo-sentiment", "language": "de", "metric": "accuracy",
             "value": 0.2}]
    from search.results import LANGUAGE_COLUMNS, _table

    write_table(_table(rows, LANGUAGE_COLUMNS), str(tmp_path), "languages")
    assert reused_details(f"{tmp_path}#a", "demo-sentiment") == \
        {"de/accuracy": 0.7, "demo-news/de/ece": 0.1}
    assert reused_details(f"{tmp_path}#zzz", "demo-sentiment") == {}


def _manifest(tmp_path, name, **trial):
    preset = load_preset("demo")
    plan = SweepPlan(storage=str(tmp_path), name=name, base=preset.trial_config(
        [f"{k}={v}" for k, v in trial.items()]), sweep=preset.sweep_config())
    write_manifest(plan)
    return plan.path


@pytest.mark.parametrize("case", ["objective", "version", "missing"])
def test_a_warm_start_that_does_not_compare_is_refused_before_anything_runs(tmp_path, capsys,
                                                                           case):
    if case == "objective":
        source = _manifest(tmp_path, "other", objective_weight=0.5)
        expected = "objective_weight: 0.5 there, 1.0 here"
    elif case == "version":
        source = _manifest(tmp_path, "old")
        path = tmp_path / "old" / MANIFEST
        body = json.loads(path.read_text())
        body["versions"]["xstilts"] = "0.0.1"
        path.write_text(json.dumps(body))
        expected = "written by xstilts 0.0.1"
    else:
        source, expected = str(tmp_path / "nowhere"), "is no sweep"
    code = main(["run", "demo", "--storage", str(tmp_path), "--name", "new",
                 "--warm-start", source, "--set", "search.trainable=surrogate"])
    err = capsys.readouterr().err
    assert code == 2 and expected in err, err
    assert not (tmp_path / "new").exists()  # nothing written for the new sweep


def test_a_resumed_sweep_goes_on_when_a_warm_start_source_is_gone(tmp_path, caplog):
    path = _manifest(tmp_path, "new")
    plan = replace(load_plan(path), warm_start=(str(tmp_path / "gone"),))
    with pytest.raises(FileNotFoundError, match="is no sweep"):
        warm_start(plan)
    warm = warm_start(plan, missing_ok=True)  # as run_sweep(resume=True) asks
    assert warm.trials == () and dict(warm.finished) == {}
    assert "its results are not reused" in caplog.text
