"""Results at scale: parts written per trial and compacted, readers that never see a torn or
doubled table while a writer appends and compacts, best/Pareto on the narrow fast path."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import search.tables as tables
from search.query import SweepResults, best, load_sweep, pareto
from search.results import (CORE_COLUMNS, HISTORY_COLUMNS, SCHEMA_KEY, SEQ_KEY, PartStore,
                            ResultsError, ResultsWriter, TableFiles, _table, list_parts,
                            lookup, read_table, table_path, write_part, write_table)
from search.tables import train_run_dir
from spaces.config import TrialConfig
from spaces.space import SpaceSpec, suggested_config
from trainables.loop import META_FILE, details_file

SPACE = SpaceSpec(tasks=("demo-polarity", "demo-topic"), learning_rate=(1e-3, 4e-3))


def _trial(i: int, *, score: float | None = None, finished: bool = True):
    score = 0.01 * (i % 37) if score is None else score
    result = {"score": score, "zs_accuracy": 0.5 + score / 2, "zs_ece": 0.1, "budget": 6,
              "finished": finished, "time_total_s": 1.0}
    return SimpleNamespace(trial_id=f"t{i:04d}", config={"learning_rate": 1e-3 + 1e-6 * i},
                           last_result=result, get_error=lambda: RuntimeError("boom"),
                           error_file=None)


def _end(writer: ResultsWriter, trial, steps=(2, 4, 6)) -> None:
    for s in steps:
        writer.on_trial_result(0, [], trial, {**trial.last_result, "budget": s})
    # what the trial's worker writes beside its Train run: per-language metrics go there
    details = Path(train_run_dir(writer.sweep_path, trial.trial_id)) / details_file(steps[-1])
    details.parent.mkdir(parents=True, exist_ok=True)
    details.write_text(json.dumps({**trial.last_result, "target_step": 6, "de/accuracy": 0.6,
                                   "fr/accuracy": 0.5, "sw/ece": 0.2}))
    writer.on_trial_complete(0, [], trial)


def _writer(path: str, max_parts: int) -> ResultsWriter:
    writer = ResultsWriter(path, sweep="s", base=TrialConfig(), spec=SPACE, max_parts=max_parts)
    writer.setup()
    return writer


def _ids(path: str) -> list[str]:
    return read_table(path, "trials", columns=["trial_id"])["trial_id"].to_pylist()


def test_writer_appends_parts_per_trial_and_compacts_them(tmp_path):
    path = str(tmp_path / "sweep")
    writer = _writer(path, max_parts=4)
    base_writes, inodes = 0, set()
    for i in range(60):
        _end(writer, _trial(i))
        for name in ("trials", "languages", "history"):
            assert len(list_parts(path, name)) <= 4
        ids = _ids(path)
        assert sorted(ids) == [f"t{j:04d}" for j in range(i + 1)]
        try:
            inodes.add(os.stat(table_path(path, "trials")).st_ino)
        except FileNotFoundError:
            pass
    base_writes = len(inodes)
    # compaction merges parts among themselves and folds them into the base rarely
    assert 1 <= base_writes <= 12, base_writes
    assert read_table(path, "history").num_rows == 60 * 3
    assert read_table(path, "languages").num_rows == 60 * 3
    # a trial recorded again (an errored trial that later finished): its newest row wins
    writer.on_trial_error(0, [], _trial(61, finished=False))
    rows = read_table(path, "trials").to_pandas().set_index("trial_id")
    assert rows.loc["t0061", "status"] == "error"
    _end(writer, _trial(61, score=0.99), steps=(6,))
    df = read_table(path, "trials").to_pandas()
    assert df["trial_id"].is_unique and len(df) == 61
    assert df.set_index("trial_id").loc["t0061", "objective"] == 0.99
    # a replay of a recorded trial writes nothing
    parts = {n: list_parts(path, n) for n in ("trials", "history", "languages")}
    replay = _trial(3)
    replay.last_result = {**replay.last_result, "replayed": True}
    writer.on_trial_complete(0, [], replay)
    assert {n: list_parts(path, n) for n in parts} == parts
    # the sweep's end folds every part: the base files alone are the whole tables
    writer.on_experiment_end([])
    for name in ("trials", "languages", "history"):
        assert list_parts(path, name) == []
        assert pq.read_table(table_path(path, name)).num_rows == read_table(path, name).num_rows


def test_resumed_writer_keeps_rows_and_continues_the_sequence(tmp_path):
    path = str(tmp_path / "sweep")
    writer = _writer(path, max_parts=8)
    for i in range(5):
        _end(writer, _trial(i))
    last = max(seq for name in ("trials", "history") for seq, _ in list_parts(path, name))
    # a kill -9 mid-write leaves a temporary file, never a part
    Path(list_parts(path, "trials")[0][1] + ".tmp-deadbeef").write_bytes(b"half a part")

    again = _writer(path, max_parts=8)  # as a resumed driver: folds what it finds first
    assert set(again.rows) == {f"t{i:04d}" for i in range(5)}
    assert ("t0002", 4) in again.history_keys
    assert not any(".tmp-" in p.name for p in (tmp_path / "sweep" / "results").rglob("*"))
    assert int(pq.read_schema(table_path(path, "trials")).metadata[SEQ_KEY]) >= last
    _end(again, _trial(5))
    new = [seq for seq, _ in list_parts(path, "trials")]
    assert new and min(new) > last
    assert sorted(_ids(path)) == [f"t{i:04d}" for i in range(6)]
    # and on once more from a third writer, which finds only parts (no fold ran)
    assert PartStore(path).next_seq > max(new)


def test_a_stopped_trial_is_recorded_with_the_evaluation_it_was_stopped_at(tmp_path):
    # ASHA stops a trial on its report at budget 4; its worker, not yet told, evaluates
    # again at budget 6 and writes those details before the driver records the trial
    writer = _writer(str(tmp_path / "sweep"), max_parts=8)
    trial = _trial(0, finished=False)
    trial.last_result = {**trial.last_result, "budget": 4}
    run = Path(train_run_dir(writer.sweep_path, trial.trial_id))
    run.mkdir(parents=True)
    for budget, acc in ((4, 0.4), (6, 0.6)):
        (run / details_file(budget)).write_text(json.dumps(
            {**trial.last_result, "budget": budget, "zs_accuracy": acc, "de/accuracy": acc}))
    writer.on_trial_complete(0, [], trial)
    row = read_table(writer.sweep_path, "trials").to_pandas().iloc[0]
    assert (row["status"], row["budget"], row["zs_accuracy"]) == ("stopped", 4, 0.4)
    langs = read_table(writer.sweep_path, "languages").to_pandas()
    assert langs[["language", "value"]].values.tolist() == [["de", 0.4]]


def test_a_finished_trials_checkpoints_stay_until_its_row_is_written(tmp_path):
    # Train's run snapshot may name an older checkpoint than the newest on storage (async
    # uploads land out of order; the driver was killed before Train registered the last).
    # A driver killed while recording the trial restarts it through Train on resume, and
    # Train refuses to start if that checkpoint is gone: nothing is deleted before the row
    # is written; after it, the kept model's checkpoint alone stays
    writer = _writer(str(tmp_path / "sweep"), max_parts=8)
    trial = _trial(0, score=0.3)
    run = Path(train_run_dir(writer.sweep_path, trial.trial_id))
    for i, step in enumerate((2, 4, 6)):
        (run / f"checkpoint_{i}").mkdir(parents=True)
        (run / f"checkpoint_{i}" / META_FILE).write_text(json.dumps({"global_step": step}))
    every = sorted(p.name for p in run.glob("checkpoint_*"))
    real_append = writer.store.append

    def killed_before_the_trials_part(tables):
        real_append({k: v for k, v in tables.items() if k != "trials"})
        raise KeyboardInterrupt("kill -9 between the history part and the trials part")

    writer.store.append = killed_before_the_trials_part
    with pytest.raises(KeyboardInterrupt):
        _end(writer, trial)
    assert sorted(p.name for p in run.glob("checkpoint_*")) == every
    assert read_table(writer.sweep_path, "trials") is None

    resumed = _writer(writer.sweep_path, max_parts=8)
    _end(resumed, trial)
    row = read_table(writer.sweep_path, "trials").to_pandas().iloc[0]
    assert (row["status"], row["checkpoint_path"]) == ("finished", str(run / "checkpoint_2"))
    assert [p.name for p in run.glob("checkpoint_*")] == ["checkpoint_2"]


def _rows(n: int, start: int = 0, *, tag: str = "a") -> list[dict]:
    return [{"sweep": "s", "trial_id": f"t{i:05d}", "config_hash": f"h{i:05d}",
             "status": "finished", "objective": float(i), "zs_accuracy": 0.5, "zs_ece": 0.1,
             "config/tag": tag} for i in range(start, start + n)]


def test_compaction_stopped_before_deleting_parts_reads_no_duplicates(tmp_path):
    path = str(tmp_path / "sweep")
    store = PartStore(path, max_parts=100)
    for i in range(6):
        store.append({"trials": _table(_rows(3, 2 * i, tag=f"p{i}"), CORE_COLUMNS)})
    expected = read_table(path, "trials").to_pandas()
    assert expected["trial_id"].is_unique and len(expected) == 13  # parts overlap by one row
    assert expected.set_index("trial_id").loc["t00002", "config/tag"] == "p1"  # newer part won
    last = list_parts(path, "trials")[-1][0]

    # moved into place, killed before deleting: the parts are still there
    write_table(read_table(path, "trials"), path, "trials", seq=last)
    assert len(list_parts(path, "trials")) == 6
    pd.testing.assert_frame_equal(read_table(path, "trials").to_pandas(), expected)
    # an older base (no seq: written before parts existed) under the same parts: parts win
    write_table(_table(_rows(13, tag="old"), CORE_COLUMNS), path, "trials")
    df = read_table(path, "trials").to_pandas()
    assert df["trial_id"].is_unique and len(df) == 13
    assert set(df["config/tag"]) == {f"p{i}" for i in range(6)}

    # the next writer folds them and removes the leftovers
    PartStore(path).fold_all()
    assert list_parts(path, "trials") == []
    assert sorted(_ids(path)) == sorted(expected["trial_id"])


@pytest.mark.parametrize("cached", [False, True], ids=["parts-read-from-files", "parts-cached"])
def test_part_compacted_between_listing_and_reading_is_read_from_the_new_base(tmp_path,
                                                                              monkeypatch,
                                                                              cached):
    """A reader never misses rows that a compaction moves while it reads. Without the
    process's part cache, a part gone after its listing makes the reader start over; with
    it, the cached copy of the part (the compaction read it) completes the snapshot."""
    monkeypatch.setattr(tables, "_PARTS", tables.OrderedDict())
    if not cached:
        monkeypatch.setattr(tables, "_remember", lambda path, part: None)
    path = str(tmp_path / "sweep")
    store = PartStore(path, max_parts=100)
    store.append({"trials": _table(_rows(10), CORE_COLUMNS)})
    store.compact("trials", fold=True)
    for i in range(3):
        store.append({"trials": _table(_rows(2, 10 + 2 * i), CORE_COLUMNS)})
    want = sorted(f"t{i:05d}" for i in range(16))
    real_list, real_open = tables._list_parts, TableFiles._open_file
    calls = {"list": 0}

    def list_then_compact(fs, folder, name):  # the compaction runs right after the listing
        listed = real_list(fs, folder, name)
        calls["list"] += 1
        if calls["list"] == 1:
            store.compact("trials", fold=True)
        return listed

    monkeypatch.setattr(tables, "_list_parts", list_then_compact)
    assert sorted(_ids(path)) == want  # the listed parts are in the base it then opened
    assert calls["list"] == 2  # the reader's listing and the compaction's: no second try

    listings = []
    monkeypatch.setattr(tables, "_list_parts", lambda *a: listings.append(a) or real_list(*a))
    for i in range(2):
        store.append({"trials": _table(_rows(2, 16 + 2 * i), CORE_COLUMNS)})
    opened = {"n": 0}

    def open_then_compact(self, p, *, whole):  # ... or after the old base was opened
        if whole and opened["n"] == 0:
            opened["n"] += 1
            store.compact("trials", fold=True)
        return real_open(self, p, whole=whole)

    monkeypatch.setattr(TableFiles, "_open_file", open_then_compact)
    listings.clear()
    assert sorted(_ids(path)) == sorted(f"t{i:05d}" for i in range(20))
    assert opened["n"] == 1
    # the compaction's listing, and the reader's: two tries without the cache, one with it
    assert len(listings) == (2 if cached else 3)


def test_newer_or_torn_part_fails_clearly(tmp_path):
    path = str(tmp_path / "sweep")
    write_table(_table(_rows(2), CORE_COLUMNS), path, "trials")
    part = write_part(_table(_rows(1, 5), CORE_COLUMNS), path, "trials", seq=7)
    t = pq.read_table(part)
    pq.write_table(t.replace_schema_metadata({**t.schema.metadata, SCHEMA_KEY: b"99"}), part)
    with pytest.raises(ResultsError, match="schema 99, newer"):
        read_table(path, "trials")
    with pytest.raises(ResultsError, match="schema 99, newer"):
        best(path)
    Path(part).write_bytes(b"PAR1 torn")
    with pytest.raises(ResultsError, match="not a readable Parquet file"):
        load_sweep(path)


def test_readers_never_see_a_torn_or_doubled_table_while_a_writer_compacts(tmp_path):
    path = str(tmp_path / "sweep")
    store = PartStore(path, max_parts=3)
    store.append({"trials": _table(_rows(200), CORE_COLUMNS)})
    stop, errors, reads = threading.Event(), [], {"n": 0, "best": 0}

    def write() -> None:
        rng, n = random.Random(0), 200
        try:
            while not stop.is_set():
                fresh = _rows(3, n, tag="new")
                again = [{**r, "objective": rng.random()} for r in _rows(2, rng.randrange(n))]
                hist = [{"trial_id": r["trial_id"], "budget": 1} for r in fresh]
                store.append({"history": _table(hist, HISTORY_COLUMNS),
                              "trials": _table(fresh + again, CORE_COLUMNS)})
                n += 3
                if rng.random() < 0.1:
                    store.compact("trials", fold=True)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(("writer", repr(exc)))

    def read() -> None:
        seen = 0
        try:
            while not stop.is_set():
                ids = _ids(path)
                assert len(ids) == len(set(ids)), "a trial twice"
                assert len(ids) >= seen, f"rows went from {seen} to {len(ids)}"
                seen = len(ids)
                top = best(path, k=5)
                front = pareto(path)
                assert len(top) == 5 and top["trial_id"].is_unique
                assert (top["status"] == "finished").all() and front["trial_id"].is_unique
                reads["n"] += 1
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(("reader", repr(exc)))

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for t in threads:
        t.start()
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert reads["n"] >= 3
    assert len(_ids(path)) > 200


# -- best and Pareto against the pandas implementations they replace -----------------------
def _best_reference(df, k, metric="objective"):
    df = df[df["status"] == "finished"].dropna(subset=[metric])
    return df.sort_values([metric, "config_hash"], ascending=[False, True],
                          kind="mergesort").head(k).reset_index(drop=True)


def _pareto_reference(df, maximize="zs_accuracy", minimize="zs_ece"):
    df = df[df["status"] == "finished"].dropna(subset=[maximize, minimize])
    df = df.sort_values([maximize, minimize, "config_hash"], ascending=[False, True, True],
                        kind="mergesort")
    keep, best_min, last = [], float("inf"), None
    for idx, hi, lo in zip(df.index, df[maximize], df[minimize]):
        if lo < best_min or (last is not None and (hi, lo) == last):
            keep.append(idx)
            last = (hi, lo)
            best_min = min(best_min, lo)
    return df.loc[keep].reset_index(drop=True)


@pytest.fixture(scope="module")
def ranked_sweep(tmp_path_factory):
    """3,000 trials with ties, NaN and nulls, as a base, parts that rewrite some of its rows,
    and a stale part a stopped compaction left."""
    rng = np.random.default_rng(7)
    n = 3000
    rows = [{"sweep": "s", "trial_id": f"t{i:05d}", "config_hash": f"h{rng.integers(0, 400):04d}",
             "status": rng.choice(["finished", "finished", "finished", "stopped", "error"]),
             "objective": None if rng.random() < 0.03 else
             (float("nan") if rng.random() < 0.03 else round(float(rng.random()), 2)),
             "zs_accuracy": float("nan") if rng.random() < 0.03 else round(float(rng.random()), 1),
             "zs_ece": None if rng.random() < 0.03 else round(float(rng.random()), 1),
             "config/model_size": rng.choice(["tiny", "base"]), "config/seed": int(i % 3),
             "config/intermediate_tasks": ["demo-polarity"]} for i in range(n)]
    path = str(tmp_path_factory.mktemp("ranked") / "sweep")
    write_table(_table(rows[:2400], CORE_COLUMNS), path, "trials", seq=3)
    write_part(_table(rows[:10], CORE_COLUMNS), path, "trials", seq=2)  # stale: in the base
    for j, lo in enumerate(range(2400, n, 150)):
        changed = [{**r, "objective": 0.99, "status": "finished"} for r in rows[j * 7:j * 7 + 3]]
        write_part(_table(rows[lo:lo + 150] + changed, CORE_COLUMNS), path, "trials", seq=4 + j)
    return path


def test_best_and_pareto_match_the_pandas_reference(ranked_sweep):
    full = read_table(ranked_sweep, "trials").to_pandas()
    assert full["trial_id"].is_unique and len(full) == 3000
    loaded = SweepResults(ranked_sweep, trials=full)  # the in-memory path, same ranking code
    for k in (1, 3, 10, 200, 5000):
        ref = _best_reference(full, k)
        pd.testing.assert_frame_equal(best(ranked_sweep, k=k), ref)
        pd.testing.assert_frame_equal(best(loaded, k=k), ref)
    ref = _best_reference(full, 7, metric="zs_accuracy")
    pd.testing.assert_frame_equal(best(ranked_sweep, k=7, metric="zs_accuracy"), ref)
    front = pareto(ranked_sweep)
    ref = _pareto_reference(full)
    pd.testing.assert_frame_equal(front, ref)
    pd.testing.assert_frame_equal(pareto(loaded), ref)
    assert len(front) >= 2 and front[["zs_accuracy", "zs_ece"]].duplicated().any()  # exact ties
    # no finished trial outside the front dominates one on it
    done = full[(full["status"] == "finished")].dropna(subset=["zs_accuracy", "zs_ece"])
    acc, ece = done["zs_accuracy"], done["zs_ece"]
    for _, r in front.iterrows():
        better = (acc > r["zs_accuracy"]) | (ece < r["zs_ece"])
        assert not ((acc >= r["zs_accuracy"]) & (ece <= r["zs_ece"]) & better).any()


def test_where_filters_on_the_fast_path(ranked_sweep):
    full = read_table(ranked_sweep, "trials").to_pandas()
    for where in ({"config/model_size": "tiny"}, {"config/seed": 2},
                  {"config/model_size": "base", "config/seed": 0}, {"config/seed": 2.0}):
        mask = np.logical_and.reduce([full[c] == v for c, v in where.items()])
        pd.testing.assert_frame_equal(best(ranked_sweep, k=5, where=where),
                                      _best_reference(full[mask], 5))
        pd.testing.assert_frame_equal(pareto(ranked_sweep, where=where),
                                      _pareto_reference(full[mask]))
    assert best(ranked_sweep, k=5, where={"config/model_size": "large"}).empty
    assert best(ranked_sweep, k=5, where={"config/model_size": 3}).empty
    by_function = best(ranked_sweep, k=4, where=lambda df: df["config/seed"] == 1)
    pd.testing.assert_frame_equal(by_function, _best_reference(full[full["config/seed"] == 1], 4))
    with pytest.raises(KeyError, match="cannot filter on 'config/nope'"):
        best(ranked_sweep, where={"config/nope": 1})
    with pytest.raises(KeyError, match="no column 'nope'"):
        pareto(ranked_sweep, maximize="nope")


def test_a_trial_tunes_snapshot_lost_is_drawn_again_and_recorded_once(tmp_path):
    # t0003 and t0004 were recorded by a driver killed before Tune's next snapshot: the
    # resumed Tune knows t0000-t0002 only, and its seeded searcher draws t0004's config
    # again (the trial reports t0004's result as a duplicate): t0004's row stands for it
    path = str(tmp_path / "sweep")
    first = _writer(path, max_parts=8)
    for i in range(5):
        _end(first, _trial(i))

    def duplicate(i: int, of: int):
        t, original = _trial(i), _trial(of)
        t.config = original.config
        t.last_result = {**original.last_result, "duplicate_of": original.trial_id}
        return t

    again = _writer(path, max_parts=8)
    drawn_again, of_known, once_more = duplicate(5, 4), duplicate(6, 1), duplicate(7, 4)
    trials = [*(_trial(i) for i in range(3)), drawn_again, of_known, once_more]
    for trial in (drawn_again, of_known, once_more):
        again.on_trial_complete(0, trials, trial)
    rows = read_table(path, "trials").to_pandas().set_index("trial_id")
    assert sorted(rows.index) == [f"t{i:04d}" for i in (0, 1, 2, 3, 4, 6, 7)]
    assert rows.loc["t0006", "duplicate_of"] == "t0001"  # a duplicate Tune knows the original of
    assert rows.loc["t0007", "duplicate_of"] == "t0004"  # t0004 drawn a second time
    assert set(rows.loc[["t0006", "t0007"], "status"]) == {"duplicate"}


def test_a_config_that_ran_is_answered_from_its_row_finished_or_stopped(tmp_path):
    # what a trial about to train a config the sweep already ran reports instead
    # (search.tune_trials._answered): the finished trial's result before a stopped one's,
    # a stopped one's last report (no 'finished'), and nothing for a config never run
    path = str(tmp_path / "sweep")
    first = _writer(path, max_parts=8)
    stopped, finished = _trial(0, finished=False), _trial(1)
    for t in (stopped, finished):
        _end(first, t)
    hash_of = {t.trial_id: suggested_config(TrialConfig(), t.config, SPACE).config_hash()
               for t in (stopped, finished, _trial(2))}

    own, ran = lookup(path, "t0009", hash_of["t0000"])
    assert own is None and ran["trial_id"] == "t0000"
    assert ran["score"] == stopped.last_result["score"] and ran["budget"] == 6
    assert "finished" not in ran  # reported again, it stops the new trial at that budget
    assert lookup(path, "t0009", hash_of["t0001"])[1]["finished"] is True
    assert lookup(path, "t0009", hash_of["t0002"]) == (None, None)
    assert lookup(path, "t0000", hash_of["t0000"])[0]["status"] == "stopped"  # its own row

    # resumed: Tune's snapshot lacked t0000 (stopped), whose config is drawn again as t0005;
    # t0006 repeats it once more; t0007 repeats it where Tune knows t0000 (and every trial
    # this driver ran)
    def drawn_again(i: int):
        t = _trial(i, finished=False)
        t.config, t.last_result = stopped.config, {**ran, "duplicate_of": ran["trial_id"]}
        return t

    again = _writer(path, max_parts=8)
    t5, t6 = drawn_again(5), drawn_again(6)
    for t in (t5, t6):
        again.on_trial_complete(0, [finished, t5, t6], t)
    t7 = drawn_again(7)
    again.on_trial_complete(0, [stopped, finished, t5, t6, t7], t7)
    rows = read_table(path, "trials").to_pandas().set_index("trial_id")
    assert sorted(rows.index) == ["t0000", "t0001", "t0006", "t0007"]
    # a repeat of a stopped trial is a stopped trial (pruned in the study), naming the original
    assert rows.loc[["t0006", "t0007"], "status"].tolist() == ["stopped", "stopped"]
    assert rows.loc[["t0006", "t0007"], "duplicate_of"].tolist() == ["t0000", "t0000"]
    assert lookup(path, "t0009", hash_of["t0000"])[1]["trial_id"] == "t0000"  # the original
