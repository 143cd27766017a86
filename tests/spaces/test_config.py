import math
import subprocess
import sys

import pytest

from spaces.config import ConfigError, TrialConfig, apply_overrides, config_hash
from spaces.models import get_model_size
from spaces.presets import load_preset, parse_preset
from spaces.tasks import get_task, task_names


def test_defaults_are_valid_and_round_trip():
    c = TrialConfig()
    assert TrialConfig.from_dict(c.to_dict()) == c
    assert c.to_dict()["intermediate_tasks"] == ["demo-polarity"]


def test_every_invalid_field_is_reported_at_once():
    bad = {
        "target": "demo-polarity",  # an intermediate task, not a target
        "intermediate_tasks": ["demo-topic", "nope"],
        "mixing": "uniform",
        "weights": {"demo-polarity": 1.0, "demo-topic": math.nan},
        "model_size": "huge",
        "learning_rate": -1.0,
        "batch_size": 0,
        "warmup_ratio": 1.5,
        "ece_bins": 0,
        "eval_split": "train",
    }
    with pytest.raises(ConfigError) as err:
        TrialConfig.from_dict(bad)
    msg = str(err.value)
    for needle in ("target='demo-polarity' is not a target task", "'nope' is unknown",
                   "mixing='uniform'", "weights has an entry for 'demo-polarity'",
                   "weights['demo-topic']=nan", "model_size='huge'", "learning_rate=-1.0",
                   "batch_size=0", "warmup_ratio=1.5", "ece_bins=0", "eval_split='train'"):
        assert needle in msg, needle
    assert len(err.value.problems) == 11
    # each problem says what is allowed
    assert "choose one of: tiny, base, large" in msg
    assert "choose one of: softmax, proportional, temperature" in msg


def test_unknown_keys_and_wrong_types_are_collected_with_other_problems():
    with pytest.raises(ConfigError) as err:
        TrialConfig.from_dict({"seeed": 1, "batch_size": "big", "model_size": "huge"})
    problems = err.value.problems
    assert any("unknown key 'seeed'" in p and "seed" in p for p in problems)
    assert any("batch_size='big': expected an integer" in p for p in problems)
    assert any("model_size='huge'" in p for p in problems)


def test_empty_task_list_needs_phase_two_off():
    with pytest.raises(ConfigError, match="intermediate_tasks is empty"):
        TrialConfig(intermediate_tasks=())
    assert TrialConfig(intermediate_tasks=(), intermediate_steps=0).intermediate_tasks == ()


def test_overrides_parse_yaml_values_and_reject_unknown_keys():
    base = TrialConfig().to_dict()
    out = apply_overrides(base, ["seed=3", "intermediate_tasks=[demo-polarity, demo-topic]",
                                 "weights.demo-topic=-1.5", "learning_rate=2e-3"])
    c = TrialConfig.from_dict(out)
    assert c.seed == 3 and c.intermediate_tasks == ("demo-polarity", "demo-topic")
    assert c.weights == {"demo-topic": -1.5} and c.learning_rate == 0.002
    with pytest.raises(ConfigError, match="unknown key; known keys"):
        apply_overrides(base, ["sed=3"])
    with pytest.raises(ConfigError, match="is not key=value"):
        apply_overrides(base, ["seed"])


def test_config_hash_is_stable_and_ignores_run_only_keys():
    a = TrialConfig(learning_rate=1e-3)
    assert a.config_hash() == TrialConfig(learning_rate=0.001000000000000001).config_hash()
    assert a.config_hash() == a.replace(num_workers=2, eval_every=5).config_hash()
    assert a.config_hash() != a.replace(seed=1).config_hash()
    # key order does not matter
    d = a.to_dict()
    assert config_hash(dict(reversed(list(d.items())))) == a.config_hash()


def test_registry_and_catalogue():
    assert {"demo-polarity", "demo-topic", "demo-match"} <= set(task_names("intermediate"))
    assert {"demo-sentiment", "xnli", "pawsx"} <= set(task_names("target"))
    assert get_task("mnli").source.path == "nyu-mll/glue"
    assert get_task("xnli").source.config == "{lang}"
    assert get_model_size("base").checkpoint == "FacebookAI/xlm-roberta-base"
    assert get_model_size("large").checkpoint == "FacebookAI/xlm-roberta-large"
    with pytest.raises(KeyError, match="known tasks: .*demo-polarity"):
        get_task("squadd")
    with pytest.raises(KeyError, match="known sizes: tiny, base, large"):
        get_model_size("xl")


def test_demo_preset_validates_and_bad_presets_fail_clearly():
    assert load_preset("demo").trial_config().target == "demo-sentiment"
    with pytest.raises(KeyError, match="shipped presets: .*demo"):
        load_preset("nonexistent")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_preset("trial: [unclosed", name="broken")
    with pytest.raises(ConfigError, match="unknown section 'trail'"):
        parse_preset("trail: {}", name="typo")


def test_import_spaces_pulls_in_neither_torch_nor_ray():
    code = ("import spaces, spaces.config, spaces.presets, spaces.tasks, spaces.models, "
            "spaces.objective, sys; assert 'torch' not in sys.modules and 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
