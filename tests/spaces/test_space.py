import optuna
import pytest
from optuna.trial import FixedTrial

from spaces.config import ConfigError, TrialConfig
from spaces.space import SpaceSpec, define_space, suggested_config
from spaces.sweep import SweepConfig

SPEC = SpaceSpec(tasks=("demo-polarity", "demo-topic", "demo-match"),
                 learning_rate=(1e-3, 4e-3), intermediate_steps=(200, 600, 100))
BASE = TrialConfig()


def _params(**kw):
    return {"learning_rate": 2e-3, "warmup_ratio": 0.1, "intermediate_steps": 300, **kw}


def test_weights_only_for_included_tasks_under_softmax():
    params = _params(**{"task/demo-polarity": True, "task/demo-topic": False, "task/demo-match": True,
                        "mixing": "softmax", "weight/demo-polarity": 1.5, "weight/demo-match": -0.5})
    trial = FixedTrial(params)
    define_space(trial, SPEC)
    assert set(trial.params) == set(params)  # exactly these names, no weight/demo-topic
    cfg = suggested_config(BASE, params, SPEC)
    assert cfg.intermediate_tasks == ("demo-polarity", "demo-match")
    assert cfg.weights == {"demo-polarity": 1.5, "demo-match": -0.5}
    assert cfg.mixing == "softmax" and cfg.learning_rate == 2e-3 and cfg.intermediate_steps == 300


def test_single_task_has_no_mixing_or_weights():
    params = _params(**{"task/demo-polarity": False, "task/demo-topic": True, "task/demo-match": False})
    trial = FixedTrial(params)
    define_space(trial, SPEC)
    assert not any(k.startswith(("weight/", "mixing")) for k in trial.params)
    assert suggested_config(BASE, params, SPEC).intermediate_tasks == ("demo-topic",)


def test_empty_subset_is_impossible_the_last_task_is_then_included():
    params = _params(**{"task/demo-polarity": False, "task/demo-topic": False})
    trial = FixedTrial(params)
    define_space(trial, SPEC)  # does not ask for task/demo-match
    assert "task/demo-match" not in trial.params
    assert suggested_config(BASE, params, SPEC).intermediate_tasks == ("demo-match",)


def test_temperature_family_asks_for_temperature_only():
    params = _params(**{"task/demo-polarity": True, "task/demo-topic": True, "task/demo-match": False,
                        "mixing": "temperature", "mixing_temperature": 3.0})
    trial = FixedTrial(params)
    define_space(trial, SPEC)
    cfg = suggested_config(BASE, params, SPEC)
    assert cfg.mixing == "temperature" and cfg.mixing_temperature == 3.0 and cfg.weights == {}


def test_nested_params_as_ray_tune_passes_them():
    nested = {"task": {"demo-polarity": True, "demo-topic": True, "demo-match": False},
              "mixing": "softmax", "weight": {"demo-polarity": 2.0, "demo-topic": 0.0},
              "learning_rate": 1e-3, "warmup_ratio": 0.0, "intermediate_steps": 200}
    cfg = suggested_config(BASE, nested, SPEC)
    assert cfg.weights == {"demo-polarity": 2.0, "demo-topic": 0.0}


def test_real_sampler_never_proposes_an_empty_subset_and_names_are_stable():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(300):
        trial = study.ask()
        define_space(trial, SPEC)
        cfg = suggested_config(BASE, trial.params, SPEC)
        assert cfg.intermediate_tasks
        weights = {k.split("/")[1] for k in trial.params if k.startswith("weight/")}
        assert weights <= set(cfg.intermediate_tasks)
        if weights:
            assert weights == set(cfg.intermediate_tasks)
        study.tell(trial, 0.0)
    names = {k for t in study.trials for k in t.params}
    assert {"task/demo-polarity", "task/demo-topic", "task/demo-match"} <= names


def test_space_and_sweep_validation_report_all_problems():
    with pytest.raises(ConfigError) as err:
        SpaceSpec(tasks=("demo-polarity", "nope"), mixing=("uniform",), learning_rate=(0.0, 1.0),
                  model_sizes=("xl",))
    msg = str(err.value)
    assert "'nope' is unknown" in msg and "'uniform' is unknown" in msg
    assert "learning_rate" in msg and "'xl' is unknown" in msg
    with pytest.raises(ConfigError) as err:
        SweepConfig(trials=0, concurrency=0, mode="pareto", asha_reduction=1)
    assert len(err.value.problems) == 4
