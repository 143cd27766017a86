"""Bad input at the command line: one clear message, exit 2, nothing written."""

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


@pytest.mark.parametrize("args, needle", [
    (["trial", "demo", "--set", "model_size=huge"], "model_size='huge' is unknown"),
    (["trial", "demo", "--set", "intermediate_tasks=[nope]"], "'nope' is unknown"),
    (["trial", "demo", "--set", "seeed=1"], "unknown key; known keys"),
    (["trial", "demo", "--set", "learning_rate=fast"], "learning_rate='fast': expected a number"),
    (["trial", "no-such-preset"], "unknown preset 'no-such-preset'"),
    (["run", "demo", "--trials", "0"], "trials=0: expected a budget of at least 1"),
    (["run", "demo", "--set", "search.mode=pareto"], "mode='pareto' is unknown"),
    (["run", "demo", "--set", "search.space.tasks=[]"], "search.space.tasks is empty"),
    (["run", "demo", "--set", "search.trials=[1"], "the value is not valid YAML"),
    (["run", "demo", "--set", "search.space.tasks=[demo-polarity, squad]"], "format 'span_qa'"),
])
def test_bad_input_gives_one_message_and_exit_2(args, needle, tmp_path):
    proc = _xstilts(*args, "--storage", str(tmp_path / "runs"))
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_unwritable_storage_is_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # nothing, not even root, can create a folder under a file
    proc = _xstilts("run", "demo", "--storage", str(blocker / "sub"), "--name", "x")
    assert proc.returncode == 2 and "is not writable" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and blocker.read_text() == "not a folder"


def test_run_refuses_an_existing_sweep_and_leaves_it_untouched(tmp_path):
    sweep = tmp_path / "runs" / "taken" / "results"
    sweep.mkdir(parents=True)
    (sweep / "trials.parquet").write_bytes(b"precious")
    proc = _xstilts("run", "demo", "--storage", str(tmp_path / "runs"), "--name", "taken")
    assert proc.returncode == 2 and "a sweep already exists" in proc.stderr
    assert (sweep / "trials.parquet").read_bytes() == b"precious"
