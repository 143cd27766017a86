"""Query functions on hand-written Parquet files with known answers."""

import json
import subprocess
import sys

import pytest

from search.query import best, load_sweep, pareto
from search.results import (CORE_COLUMNS, LANGUAGE_COLUMNS, SCHEMA_KEY, ResultsError, _table,
                            read_table, write_table)


def _row(tid, h, status, obj, acc, ece, **config):
    return {"sweep": "t", "trial_id": tid, "config_hash": h, "status": status, "objective": obj,
            "zs_accuracy": acc, "zs_ece": ece, "config/model_size": "tiny",
            "config/intermediate_tasks": config.get("tasks", ["demo-polarity"]),
            "config/learning_rate": 1e-3, "config/weights/demo-polarity": config.get("w")}


ROWS = [
    _row("a", "h3", "finished", 0.50, 0.70, 0.20),
    _row("b", "h1", "finished", 0.60, 0.65, 0.05, w=1.5),   # tie on objective with c
    _row("c", "h2", "finished", 0.60, 0.80, 0.20),
    _row("d", "h4", "stopped", 0.90, 0.90, 0.00),           # not ranked: stopped early
    _row("e", "h5", "error", None, None, None),
    _row("f", "h6", "finished", 0.55, 0.60, 0.05),          # dominated by b (same ece, lower acc)
    _row("g", "h7", "finished", 0.40, 0.80, 0.40),          # dominated by c (same acc, higher ece)
    _row("h", "h0", "finished", 0.60, 0.80, 0.20),          # exact tie with c on both objectives
]


@pytest.fixture
def sweep_dir(tmp_path):
    path = str(tmp_path / "sweep")
    write_table(_table(ROWS, CORE_COLUMNS), path, "trials")
    write_table(_table([{"trial_id": "a", "task": "demo-sentiment", "language": "de",
                         "metric": "accuracy", "value": 0.7}], LANGUAGE_COLUMNS), path, "languages")
    return path


def test_best_breaks_ties_by_config_hash_and_skips_unfinished(sweep_dir):
    top = best(sweep_dir, k=4)
    assert list(top["trial_id"]) == ["h", "b", "c", "f"]  # 0.60 (h0 < h1 < h2), then 0.55
    assert best(sweep_dir, k=1)["trial_id"][0] == "h"
    assert list(best(sweep_dir, k=10, where={"config/model_size": "tiny"})["trial_id"])[:1] == ["h"]
    assert best(sweep_dir, k=10, where={"config/model_size": "base"}).empty
    assert list(best(sweep_dir, k=2, metric="zs_accuracy")["trial_id"]) == ["h", "c"]


def test_pareto_front_known_answer_with_ties(sweep_dir):
    front = pareto(sweep_dir)
    assert set(front["trial_id"]) == {"h", "c", "b"}
    # sorted by accuracy desc, then ece, then config hash
    assert list(front["trial_id"]) == ["h", "c", "b"]


def test_sweep_views_and_config_round_trip(sweep_dir):
    s = load_sweep(sweep_dir)
    assert len(s.trials) == len(ROWS)
    cfg = s.config("b")
    assert cfg["weights"] == {"demo-polarity": 1.5} and cfg["intermediate_tasks"] == ["demo-polarity"]
    assert s.config("a")["weights"] == {}
    assert s.languages_wide("accuracy").loc["a", "de"] == 0.7
    with pytest.raises(KeyError, match="not in sweep"):
        s.config("zz")


def test_files_carry_schema_version_and_other_readers_work(sweep_dir):
    table = read_table(sweep_dir, "trials")
    assert table.schema.metadata[SCHEMA_KEY] == b"3"
    duckdb = pytest.importorskip("duckdb")
    polars = pytest.importorskip("polars")

    path = f"{sweep_dir}/results/trials.parquet"
    assert len(polars.read_parquet(path)) == len(ROWS)
    n = duckdb.sql(f"select count(*) from read_parquet('{path}') where status = 'finished'").fetchall()[0][0]
    assert n == 6


def test_newer_schema_and_corrupt_files_fail_clearly(tmp_path):
    path = str(tmp_path / "s")
    t = _table(ROWS[:1], CORE_COLUMNS)
    write_table(t, path, "trials")
    import pyarrow.parquet as pq

    file = f"{path}/results/trials.parquet"
    pq.write_table(t.replace_schema_metadata({SCHEMA_KEY: b"99"}), file)
    with pytest.raises(ResultsError, match="schema 99, newer"):
        load_sweep(path)
    with open(file, "wb") as f:
        f.write(b"not parquet")
    with pytest.raises(ResultsError, match="not a readable Parquet file"):
        load_sweep(path)
    with pytest.raises(FileNotFoundError, match="no sweep at"):
        load_sweep(str(tmp_path / "missing"))


def test_cli_best_and_pareto_json(sweep_dir):
    out = subprocess.run([sys.executable, "-m", "search.cli", "best", sweep_dir, "-k", "2", "--json"],
                         check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)
    assert [r["trial_id"] for r in rows] == ["h", "b"]
    assert rows[1]["config"]["weights"] == {"demo-polarity": 1.5}
    out = subprocess.run([sys.executable, "-m", "search.cli", "pareto", sweep_dir, "--json"],
                         check=True, capture_output=True, text=True).stdout
    assert [r["trial_id"] for r in json.loads(out)] == ["h", "c", "b"]
    text = subprocess.run([sys.executable, "-m", "search.cli", "best", sweep_dir],
                          check=True, capture_output=True, text=True).stdout
    assert text.splitlines()[1].startswith("h ")
    bad = subprocess.run([sys.executable, "-m", "search.cli", "best", sweep_dir + "-nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no sweep at" in bad.stderr and "Traceback" not in bad.stderr
