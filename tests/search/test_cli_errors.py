"""Bad input through a real process: one clear message, exit 2, nothing written.

The full table of bad inputs runs in-process in test_bad_input.py."""

import subprocess
import sys

import pytest

from spaces.presets import load_preset
from spaces.tasks import PAPER_INTERMEDIATE


def _xstilts(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "search.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_paper_presets_validate_with_the_nine_tasks_and_recipe():
    for name, size in (("paper-base", "base"), ("paper-large", "large")):
        p = load_preset(name)
        cfg, sweep = p.trial_config(), p.sweep_config()
        assert cfg.model_size == size and cfg.learning_rate == 1e-5 and cfg.max_length == 256
        assert cfg.warmup_ratio == 0.1 and cfg.weight_decay == 0.01 and cfg.batch_size == 32
        assert tuple(sweep.space.tasks) == PAPER_INTERMEDIATE and len(PAPER_INTERMEDIATE) == 9


@pytest.mark.parametrize("preset", ["paper-base", "paper-large"])
def test_paper_preset_without_hub_fails_clearly_before_anything_starts(preset, tmp_path):
    storage = tmp_path / "runs"
    proc = _xstilts("run", preset, "--storage", str(storage), "--name", "x")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "Hugging Face hub is unreachable" in proc.stderr and "HF_HUB_OFFLINE=1" in proc.stderr
    assert not storage.exists()  # no partial output


def test_run_refuses_an_existing_sweep_and_leaves_it_untouched(tmp_path):
    sweep = tmp_path / "runs" / "taken" / "results"
    sweep.mkdir(parents=True)
    (sweep / "trials.parquet").write_bytes(b"precious")
    proc = _xstilts("run", "demo", "--storage", str(tmp_path / "runs"), "--name", "taken")
    assert proc.returncode == 2 and "a sweep already exists" in proc.stderr
    assert "xstilts resume" in proc.stderr and "Traceback" not in proc.stderr
    assert (sweep / "trials.parquet").read_bytes() == b"precious"
