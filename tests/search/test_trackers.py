"""``xstilts run --log-to mlflow``: one MLflow run per trial, with its config and metrics, in
a local MLflow store (SQLite: MLflow 3 keeps its file store in maintenance mode), through Ray Tune's own MLflowLoggerCallback."""

from __future__ import annotations

import pytest

from search.cli import main
from search.results import read_table


@pytest.mark.ray
def test_an_mlflow_file_store_gets_one_run_per_trial(ray_local, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    assert main(["run", "demo", "--storage", str(tmp_path), "--name", "tracked", "--trials", "3",
                 "--set", "search.trainable=surrogate", "--set", "search.surrogate_seconds=0.2",
                 "--set", "search.asha_grace=0", "--log-to", "mlflow"]) == 0
    trials = {r["trial_id"]: r for r in read_table(str(tmp_path / "tracked"), "trials").to_pylist()}
    store = tmp_path / "tracked" / "mlflow.db"  # the default store of a local sweep
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == len(trials) == 3
    for run in runs:
        # the trial's parameters as Tune's config holds them, its metrics as it reported them
        assert any(k.startswith("task/") for k in run.data.params), run.data.params
        assert "learning_rate" in run.data.params
        assert "score" in run.data.metrics and "zs_accuracy" in run.data.metrics
    scores = sorted(r.data.metrics["score"] for r in runs)
    assert scores == pytest.approx(sorted(t["objective"] for t in trials.values()))


def test_an_unknown_tracker_is_refused_before_anything_runs(tmp_path, capsys):
    assert main(["run", "demo", "--storage", str(tmp_path), "--name", "x", "--log-to",
                 "tensorboard"]) == 2
    assert "--log-to 'tensorboard' is unknown; use mlflow" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
