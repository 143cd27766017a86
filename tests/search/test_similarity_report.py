"""The report's similarity section on hand-written rows: the estimates in similarity.parquet
against single-task trials in the trials table; its rank correlations are scipy's."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest
from scipy import stats

from search.results import CORE_COLUMNS, _table, config_columns, write_table
from search.similarity import read_similarity, write_similarity
from spaces.presets import load_preset

TASKS = ["demo-polarity", "demo-topic", "demo-match", "demo-tags", "demo-polarity@de"]


@pytest.fixture
def sweep_path(tmp_path):
    """Five tasks, three seeds of single-task trials each, a multi-task trial and a stopped
    one (neither counts), and two seeds of estimates per task for this target and one row
    for another target (which does not count either)."""
    path = str(tmp_path / "sim")
    base = load_preset("q-similarity").trial_config()
    rng = random.Random(0)
    gains = {"demo-polarity": 0.10, "demo-topic": -0.03, "demo-match": 0.04, "demo-tags": 0.0,
             "demo-polarity@de": 0.06}
    rows = []
    for task in TASKS:
        for seed in (0, 1, 2):
            acc = 0.55 + gains[task] + rng.gauss(0, 0.01)
            ece = 0.30 - gains[task] / 2 + rng.gauss(0, 0.01)
            tid = f"{task}-{seed}"
            rows.append({"sweep": "sim", "trial_id": tid, "config_hash": tid, "status": "finished",
                         "objective": acc - ece, "zs_accuracy": acc, "zs_ece": ece,
                         "finished_at": float(len(rows)),
                         **config_columns(base.replace(intermediate_tasks=[task], seed=seed))})
    mixed = base.replace(intermediate_tasks=["demo-polarity", "demo-topic"], mixing="proportional")
    rows.append({**rows[0], "trial_id": "mix", "config_hash": "mix", "zs_accuracy": 0.99,
                 **config_columns(mixed)})
    rows.append({**rows[1], "trial_id": "stop", "config_hash": "stop", "status": "stopped",
                 "zs_accuracy": 0.0})
    write_table(_table(rows, CORE_COLUMNS), path, "trials")
    estimates = [{"intermediate": t, "target": "demo-sentiment", "model_size": "tiny", "seed": s,
                  "method": "logme", "estimate": -0.7 + 2 * gains[t] + rng.gauss(0, 0.03),
                  "logme": 0.0, "logme_pretrained": 0.0, "logme_gain": 0.0, "text_cosine": 0.9,
                  "steps": 100, "examples": 160, "seconds": 1.0}
                 for t in TASKS for s in (0, 1)]
    estimates.append({**estimates[0], "target": "xnli", "estimate": 99.0})
    write_similarity(pd.DataFrame(estimates), path)
    return path


def test_the_sections_correlations_are_scipys_on_the_same_rows(sweep_path):
    from search.report import similarity_correlations, similarity_transfer

    rows = similarity_transfer(sweep_path)
    assert sorted(rows["intermediate"]) == sorted(TASKS) and (rows["trials"] == 3).all()
    # by hand: the mean of each task's three single-task trials, the mean of its two estimates
    frame = read_similarity(sweep_path)
    mine = frame[frame["target"] == "demo-sentiment"].groupby("intermediate")["estimate"].mean()
    assert rows.set_index("intermediate")["estimate"].to_dict() == pytest.approx(mine.to_dict())
    assert list(rows["estimate"]) == sorted(rows["estimate"], reverse=True)

    corr = similarity_correlations(sweep_path).set_index("metric")
    for metric in ("zs_accuracy", "zs_ece"):
        rho = stats.spearmanr(rows["estimate"], rows[metric]).statistic
        tau = stats.kendalltau(rows["estimate"], rows[metric]).statistic
        assert corr.loc[metric, "spearman"] == pytest.approx(rho, abs=1e-12)
        assert corr.loc[metric, "kendall"] == pytest.approx(tau, abs=1e-12)
        assert corr.loc[metric, "n"] == 5
        assert corr.loc[metric, "spearman_low"] <= rho <= corr.loc[metric, "spearman_high"]
    # the estimate was built to follow the gains: accuracy up, ECE down
    assert corr.loc["zs_accuracy", "spearman"] > 0.5 > -0.5 > corr.loc["zs_ece", "spearman"]


def test_ties_are_ranked_as_scipy_ranks_them():
    from search.report import kendall, spearman

    x = [1.0, 2.0, 2.0, 3.0, 5.0, 5.0]
    y = [0.3, 0.1, 0.4, 0.4, 0.9, 0.2]
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert kendall(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)


def test_the_page_and_json_show_the_sections_numbers(sweep_path, tmp_path, capsys):
    from search.cli import main
    from search.report import similarity_correlations

    assert main(["report", sweep_path, "--json"]) == 0
    numbers = json.loads(capsys.readouterr().out)
    section = numbers["similarity"]
    assert not section["missing"] and len(section["rows"]) == 5
    rho = similarity_correlations(sweep_path).set_index("metric").loc["zs_accuracy", "spearman"]
    shown = {r["metric"]: r["spearman"] for r in section["correlations"]}
    assert shown["zs_accuracy"] == pytest.approx(rho)

    out = tmp_path / "page"
    assert main(["report", sweep_path, "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "Does task similarity predict transfer?" in page
    assert f"{rho:.4f}" in page
    assert (out / "figures" / "similarity.png").stat().st_size > 1000


def test_without_estimates_the_section_says_how_to_get_them(tmp_path):
    from search.page import report_numbers

    path = str(tmp_path / "none")
    base = load_preset("q-similarity").trial_config()
    write_table(_table([{"sweep": "none", "trial_id": "a", "config_hash": "a",
                         "status": "finished", "objective": 0.1, "zs_accuracy": 0.5,
                         "zs_ece": 0.3, "finished_at": 0.0, **config_columns(base)}],
                       CORE_COLUMNS), path, "trials")
    missing = report_numbers(path)["similarity"]["missing"]
    assert len(missing) == 1 and "xstilts similarity" in missing[0]
