"""``task@lang``: a task's training data in another of its languages as an intermediate
task, through the registry, the trial config, ``--set``, presets and the search space."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
from optuna.trial import FixedTrial

from spaces.config import ConfigError, TrialConfig, apply_overrides
from spaces.packing import batch_shapes
from spaces.presets import load_preset
from spaces.space import SpaceSpec, define_space, suggested_config
from spaces.tasks import get_task, intermediate_problem, register, split_language, task_names


def test_task_at_lang_is_the_tasks_training_data_in_that_language():
    xnli, de = get_task("xnli"), get_task("xnli@de")
    assert (de.name, de.role, de.languages, de.train_language) == (
        "xnli@de", "intermediate", ("de",), "de")
    assert de.zero_shot_languages == () and de.base_name == "xnli" and xnli.base_name == "xnli"
    # the same data, columns and labels as the task; only name, role and language differ
    assert (de.source, de.columns, de.labels, de.format) == (
        xnli.source, xnli.columns, xnli.labels, xnli.format)
    assert "de training data" in de.description
    assert get_task("xnli@de") is de  # one spec per name
    assert get_task("panx@fr").train_language == "fr" and get_task("tydiqa@fi").format == "span_qa"
    assert get_task("xnli@en").role == "intermediate"  # a target's English training data
    assert get_task("demo-polarity@de").source == get_task("demo-polarity").source
    assert split_language("xnli@de") == ("xnli", "de") and split_language("mnli") == ("mnli", None)
    assert "xnli@de" not in task_names() and "demo-polarity@de" not in task_names("intermediate")


def test_a_language_the_task_lacks_is_refused_with_the_list_it_has():
    with pytest.raises(KeyError) as err:
        get_task("xnli@xx")
    msg = err.value.args[0]
    assert "xnli has no language 'xx'" in msg
    assert "it has: en, ar, bg, de, el, es, fr, hi, ru, sw, th, tr, ur, vi, zh" in msg
    assert "write xnli@LANG" in msg
    with pytest.raises(KeyError, match="mnli has no language 'de'; it has: en;"):
        get_task("mnli@de")
    with pytest.raises(KeyError, match="demo-polarity has no language 'fr'; it has: en, de;"):
        get_task("demo-polarity@fr")
    with pytest.raises(KeyError, match="unknown task 'nope'; known tasks: .*xnli"):
        get_task("nope@de")


@pytest.mark.parametrize("name, needle", [
    ("xquad@de", "xquad has no training data of its own (it trains on squad)"),
    ("mlqa@de", "mlqa has no training data of its own"),
    ("bucc@de", "bucc is a retrieval task, which phase 2 cannot train"),
    ("tatoeba@de", "tatoeba is a retrieval task"),
    ("demo-polarity@en", "is demo-polarity itself (en is its training language)"),
])
def test_tasks_that_cannot_train_in_phase_two_are_refused(name, needle):
    with pytest.raises(ValueError) as err:
        get_task(name)
    assert needle in err.value.args[0]
    assert err.value.args[0].endswith(("choose a task with a train split", "write 'demo-polarity'",
                                       "tagging"))  # what to do instead
    assert intermediate_problem(name) == err.value.args[0]


def test_intermediate_problem_says_what_to_write():
    assert intermediate_problem("mnli") is None and intermediate_problem("xnli@de") is None
    assert "'xnli' is a target task; write xnli@en" in intermediate_problem("xnli")
    assert "'nope' is unknown; choose from: " in intermediate_problem("nope")
    assert "TASK@LANG" in intermediate_problem("nope")


def test_registered_names_cannot_hold_the_separator():
    with pytest.raises(ValueError, match="holds '@'"):
        register(dataclasses.replace(get_task("mnli"), name="mnli@x"))
    assert "mnli@x" not in task_names()


def test_trial_config_set_and_preset_accept_task_at_lang():
    cfg = TrialConfig(intermediate_tasks=("demo-polarity", "demo-polarity@de"),
                      weights={"demo-polarity@de": 1.5})
    assert TrialConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.mixing_logits() == {"demo-polarity": 0.0, "demo-polarity@de": 1.5}
    assert cfg.config_hash() != TrialConfig(intermediate_tasks=("demo-polarity",)).config_hash()
    # --set, as the CLI passes it
    sets = ["intermediate_tasks=[mnli, xnli@de]", "weights.xnli@de=0.5", "target=xnli"]
    over = TrialConfig.from_dict(apply_overrides(TrialConfig().to_dict(), sets))
    assert over.intermediate_tasks == ("mnli", "xnli@de") and over.weights == {"xnli@de": 0.5}
    preset = load_preset("demo")
    demo = preset.trial_config(["intermediate_tasks=[demo-polarity, demo-topic, demo-polarity@de]",
                                "weights.demo-polarity@de=1.0"])
    assert demo.intermediate_tasks[-1] == "demo-polarity@de"
    assert demo.weights["demo-polarity@de"] == 1.0
    sweep = preset.sweep_config(space={"tasks": ["demo-polarity", "demo-polarity@de"]})
    assert sweep.space.tasks == ("demo-polarity", "demo-polarity@de")
    # batch shapes (GPU packing) count task@lang like any intermediate task
    assert batch_shapes(cfg)["demo-polarity@de"] == (1, cfg.max_length)


def test_bad_task_at_lang_is_reported_with_every_other_problem():
    with pytest.raises(ConfigError) as err:
        TrialConfig(intermediate_tasks=("xnli@xx", "xquad@de", "xnli", "demo-polarity@en"),
                    batch_size=0)
    msg = str(err.value)
    assert len(err.value.problems) == 5
    assert "intermediate task 'xnli@xx': xnli has no language 'xx'; it has: en, ar" in msg
    assert "'xquad@de': xquad has no training data of its own" in msg
    assert "intermediate task 'xnli' is a target task; write xnli@en" in msg
    assert "write 'demo-polarity'" in msg
    with pytest.raises(ConfigError, match=r"search.space.tasks: 'panx@xx': panx has no language "
                                          r"'xx'; it has: en, af"):
        SpaceSpec(tasks=("demo-polarity", "panx@xx"))


SPEC = SpaceSpec(tasks=("demo-polarity", "demo-polarity@de"), mixing=("softmax",),
                 learning_rate=(1e-3, 4e-3), intermediate_steps=(200, 600, 100))


def test_space_names_its_flag_and_weight_after_task_at_lang():
    params = {"task/demo-polarity": True, "task/demo-polarity@de": True,
              "weight/demo-polarity": 0.5, "weight/demo-polarity@de": -1.0,
              "learning_rate": 2e-3, "warmup_ratio": 0.1, "intermediate_steps": 300}
    trial = FixedTrial(params)
    define_space(trial, SPEC)
    assert set(trial.params) == set(params)
    cfg = suggested_config(TrialConfig(), params, SPEC)
    assert cfg.intermediate_tasks == ("demo-polarity", "demo-polarity@de")
    assert cfg.weights == {"demo-polarity": 0.5, "demo-polarity@de": -1.0}
    nested = {"task": {"demo-polarity": False, "demo-polarity@de": True},  # as Ray Tune passes it
              "learning_rate": 2e-3, "warmup_ratio": 0.1, "intermediate_steps": 300}
    assert suggested_config(TrialConfig(), nested, SPEC).intermediate_tasks == ("demo-polarity@de",)


def test_a_real_study_suggests_task_at_lang_and_builds_its_config():
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=5))
    seen = []
    for i in range(20):
        trial = study.ask()
        define_space(trial, SPEC)
        cfg = suggested_config(TrialConfig(), trial.params, SPEC)
        if "weight/demo-polarity@de" in trial.params:
            seen.append(cfg)
            assert "demo-polarity@de" in cfg.intermediate_tasks
            assert cfg.weights["demo-polarity@de"] == trial.params["weight/demo-polarity@de"]
        study.tell(trial, float(i % 3))
    assert seen, "the study never included demo-polarity@de with another task"
    names = {k for t in study.trials for k in t.params}
    assert {"task/demo-polarity", "task/demo-polarity@de", "weight/demo-polarity@de"} <= names
    assert study.best_trial.params  # the study stores and ranks trials by those names
