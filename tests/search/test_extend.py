"""``xstilts resume --trials N``: a finished sweep gets more trials; what it recorded stays."""

from __future__ import annotations

import json

import pytest

from search.cli import main
from search.results import read_table
from search.sweep import MANIFEST
from tests.search.sweeps import SURROGATE, trials_by_id



@pytest.mark.ray
def test_resume_with_more_trials_runs_exactly_the_extra_ones(ray_local, tmp_path, capsys):
    path = str(tmp_path / "ext")
    assert main(["run", "demo", "--storage", str(tmp_path), "--name", "ext", "--trials", "4",
                 *SURROGATE]) == 0
    before = trials_by_id(path)
    history_before = read_table(path, "history").to_pylist()
    assert len(before) == 4

    assert main(["resume", path, "--trials", "7"]) == 0
    after = trials_by_id(path)
    assert len(after) == 7
    for trial_id, row in before.items():  # nothing recorded was run again
        assert {k: after[trial_id][k] for k in row} == row
        # (columns the new trials brought, e.g. another task's weight, are empty for the old)
        assert all(after[trial_id][k] is None for k in set(after[trial_id]) - set(row))
    history_after = read_table(path, "history").to_pylist()
    old = [h for h in history_after if h["trial_id"] in before]
    assert sorted(map(json.dumps, old)) == sorted(map(json.dumps, history_before))
    manifest = json.loads((tmp_path / "ext" / MANIFEST).read_text())
    assert manifest["sweep"]["trials"] == 7

    capsys.readouterr()
    assert main(["resume", path]) == 0  # the raised budget is the sweep's budget now
    assert "is complete (7 trials recorded, budget 7)" in capsys.readouterr().out


def test_a_budget_is_never_lowered_and_a_designed_sweep_is_not_extended(tmp_path, capsys):
    from search.sweep import SweepPlan, write_manifest
    from spaces.presets import load_preset

    for name in ("demo", "q-similarity"):
        preset = load_preset(name)
        write_manifest(SweepPlan(storage=str(tmp_path), name=name, base=preset.trial_config(),
                                 sweep=preset.sweep_config()))
    text = (tmp_path / "demo" / MANIFEST).read_text()
    assert main(["resume", str(tmp_path / "demo"), "--trials", "3"]) == 2
    assert "budget is already 10 trials; give a larger N" in capsys.readouterr().err
    assert main(["resume", str(tmp_path / "q-similarity"), "--trials", "20"]) == 2
    assert "is a designed sweep" in capsys.readouterr().err
    assert (tmp_path / "demo" / MANIFEST).read_text() == text  # nothing written
