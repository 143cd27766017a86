"""Trials recorded after Tune's last snapshot: suggested first on resume, trained never."""

from __future__ import annotations

from types import SimpleNamespace

from ray.tune.search import ConcurrencyLimiter

from search.results import ResultsWriter, read_table
from search.searcher import LOST_ATTR, BudgetedSearch, make_searcher
from search.sweep import SweepPlan, write_manifest
from spaces.presets import load_preset
from spaces.space import suggested_config


def test_trials_tunes_snapshot_lacks_are_suggested_first_then_the_sampler_goes_on(tmp_path):
    preset = load_preset("demo")
    plan = SweepPlan(storage=str(tmp_path), name="s", base=preset.trial_config(),
                     sweep=preset.sweep_config(trials=8))
    write_manifest(plan)

    def generator(searcher, sweep_path=None):
        return BudgetedSearch(ConcurrencyLimiter(searcher, max_concurrent=2), 8, sweep_path)

    first = make_searcher(plan.sweep)
    gen = generator(first)
    writer = ResultsWriter(plan.path, sweep="s", base=plan.base, spec=plan.sweep.space)
    writer.setup()
    trials = []

    def run(tid: str, score: float | None, finished: bool = False):
        trial = SimpleNamespace(trial_id=tid, config=first.suggest(tid), error_file=None,
                                last_result={"score": score, "budget": 240 if finished else 200,
                                             "finished": finished, "time_total_s": 1.0})
        trials.append(trial)
        if score is not None:  # recorded
            first.on_trial_complete(tid, trial.last_result)
            writer.on_trial_complete(0, trials, trial)

    run("t0", 0.30, finished=True)
    run("t1", 0.20)
    (tmp_path / "tune").mkdir()
    gen.save_to_dir(str(tmp_path / "tune"), "snapshot")  # Tune's last snapshot
    run("t2", None)  # still training when the driver was killed: not recorded
    run("t3", 0.25)  # recorded after the snapshot: stopped ...
    run("t4", 0.35, finished=True)  # ... and finished
    assert read_table(plan.path, "trials")["trial_id"].to_pylist() == ["t0", "t1", "t3", "t4"]

    def hash_of(config) -> str:
        return suggested_config(plan.base, config, plan.sweep.space).config_hash()

    drawn = [hash_of(t.config) for t in trials]
    # resumed: a searcher restored from the snapshot knows t0 and t1 only; as restored, it
    # draws t2's config next, then t3's: seeded, its draws repeat
    replayed = make_searcher(plan.sweep)
    generator(replayed).restore_from_dir(str(tmp_path / "tune"))  # without the results
    assert set(replayed._ot_trials) == {"t0", "t1"}
    assert [hash_of(replayed.suggest(t)) for t in ("n0", "n1")] == drawn[2:4]
    # with the results: the lost trials' configs first, in the order they were recorded,
    # then the sampler, reseeded, draws none of them again (t2's, unrecorded, may come later)
    restored = make_searcher(plan.sweep)
    generator(restored, plan.path).restore_from_dir(str(tmp_path / "tune"))
    assert [hash_of(restored.suggest(t)) for t in ("n0", "n1")] == drawn[3:5]
    assert hash_of(restored.suggest("n2")) not in drawn
    assert not [t for t in restored.study.trials if t.state.name == "WAITING"]

    # killed again after a snapshot that holds t3's and t4's configs queued, not yet drawn:
    # the next resume queues them no second time
    queued = make_searcher(plan.sweep)
    queued_gen = generator(queued, plan.path)
    queued_gen.restore_from_dir(str(tmp_path / "tune"))
    (tmp_path / "tune2").mkdir()
    queued_gen.save_to_dir(str(tmp_path / "tune2"), "snapshot")
    twice = make_searcher(plan.sweep)
    generator(twice, plan.path).restore_from_dir(str(tmp_path / "tune2"))
    waiting = [t for t in twice.study.trials if t.state.name == "WAITING"]
    assert [t.user_attrs[LOST_ATTR] for t in waiting] == ["t3", "t4"]
    # nor once one of them was drawn (n0 replays t3; the study keeps t3's id on n0's trial)
    queued.suggest("n0")
    (tmp_path / "tune3").mkdir()
    queued_gen.save_to_dir(str(tmp_path / "tune3"), "snapshot")
    thrice = make_searcher(plan.sweep)
    generator(thrice, plan.path).restore_from_dir(str(tmp_path / "tune3"))
    assert [t.user_attrs[LOST_ATTR] for t in thrice.study.trials
            if LOST_ATTR in t.user_attrs] == ["t3", "t4"]


def test_a_lost_trial_of_a_queued_point_is_replayed_by_that_point_alone(tmp_path):
    # priors (or a designed sweep's arms) wait in the study as enqueued points; a lost trial
    # that took one finds it waiting again after the restore: it is not queued a second time
    preset = load_preset("demo")
    plan = SweepPlan(storage=str(tmp_path), name="s", base=preset.trial_config(),
                     sweep=preset.sweep_config(trials=8))
    write_manifest(plan)
    draws = make_searcher(plan.sweep)
    points = []
    for i in range(3):
        draws.suggest(f"d{i}")
        points.append(draws.study.trials[-1].params)
    first = make_searcher(plan.sweep, priors=points)
    gen = BudgetedSearch(ConcurrencyLimiter(first, max_concurrent=2), 8)
    writer = ResultsWriter(plan.path, sweep="s", base=plan.base, spec=plan.sweep.space)
    writer.setup()
    trials = []
    for tid in ("t0", "t1"):
        if tid == "t1":
            (tmp_path / "tune").mkdir()
            gen.save_to_dir(str(tmp_path / "tune"), "snapshot")
        trial = SimpleNamespace(trial_id=tid, config=first.suggest(tid), error_file=None,
                                last_result={"score": 0.3, "budget": 240, "finished": True,
                                             "time_total_s": 1.0})
        trials.append(trial)
        first.on_trial_complete(tid, trial.last_result)
        writer.on_trial_complete(0, trials, trial)

    restored = make_searcher(plan.sweep, priors=points)
    BudgetedSearch(ConcurrencyLimiter(restored, max_concurrent=2), 8,
                   plan.path).restore_from_dir(str(tmp_path / "tune"))
    waiting = [t.system_attrs["fixed_params"] for t in restored.study.trials
               if t.state.name == "WAITING"]
    assert waiting == points[1:]  # t1's point once, then the one no trial took
