"""Presets' per-target recipes (the ``targets:`` section) and how they reach the space."""

import optuna
import pytest

from spaces.config import ConfigError, TrialConfig
from spaces.presets import load_preset, parse_preset
from spaces.space import define_space, suggested_config
from spaces.sweep import SweepConfig
from spaces.tasks import task_names

#: the paper's recipe (jiant defaults): target -> (target epochs, effective batch);
#: BUCC and Tatoeba have no target training and keep the preset's trial values
RECIPE = {"xnli": (2, 32), "pawsx": (5, 32), "udpos": (10, 32), "panx": (10, 32),
          "xquad": (2, 16), "mlqa": (2, 16), "tydiqa": (2, 16), "bucc": (2, 32),
          "tatoeba": (2, 32)}
PAPER = ("paper-base", "paper-large")

DEMO_TRIAL = """
trial: {target: demo-sentiment, intermediate_tasks: [demo-polarity], target_epochs: 8}
search: {space: {tasks: [demo-polarity], batch_size: [16, 32], target_epochs: [8]}}
"""


def _sweep_trial(base: TrialConfig, sweep: SweepConfig) -> TrialConfig:
    """The config one trial of the sweep runs (as ``search.tune_trials`` builds it)."""
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    define_space(trial, sweep.space)
    return suggested_config(base, trial.params, sweep.space)


def test_the_recipe_covers_the_nine_xtreme_targets():
    assert set(RECIPE) <= set(task_names("target")) and len(RECIPE) == 9
    for name in PAPER:
        assert set(load_preset(name).targets) == set(RECIPE)


@pytest.mark.parametrize("preset", PAPER)
@pytest.mark.parametrize("target", sorted(RECIPE))
def test_paper_presets_give_each_target_its_recipe_in_trial_and_space(preset, target):
    p = load_preset(preset)
    epochs, batch = RECIPE[target]
    overrides = [f"target={target}"]
    cfg, sweep = p.trial_config(overrides), p.sweep_config(overrides)
    assert cfg.target == target
    assert (cfg.target_epochs, cfg.batch_size) == (epochs, batch)
    assert tuple(sweep.space.target_epochs) == (epochs,)
    assert tuple(sweep.space.batch_size) == (batch,)
    ran = _sweep_trial(cfg, sweep)
    assert (ran.target, ran.target_epochs, ran.batch_size) == (target, epochs, batch)
    # the rest of the paper's recipe is the same for every target
    assert (cfg.learning_rate, cfg.weight_decay, cfg.warmup_ratio, cfg.max_length) == (
        1e-5, 0.01, 0.1, 256)


@pytest.mark.parametrize("preset", PAPER)
def test_without_overrides_the_paper_presets_are_as_before(preset):
    p = load_preset(preset)
    assert p.trial_config() == TrialConfig.from_dict(p.trial)
    assert p.sweep_config() == SweepConfig.from_dict(p.search)


def test_user_set_wins_over_the_recipe_in_trial_and_space():
    p = load_preset("paper-base")
    overrides = ["target=panx", "target_epochs=3", "batch_size=8"]
    cfg, sweep = p.trial_config(overrides), p.sweep_config(overrides)
    assert (cfg.target_epochs, cfg.batch_size) == (3, 8)
    assert tuple(sweep.space.target_epochs) == (3,) and tuple(sweep.space.batch_size) == (8,)
    ran = _sweep_trial(cfg, sweep)
    assert (ran.target_epochs, ran.batch_size) == (3, 8)
    # order does not matter: the recipe applies to the target the overrides choose
    assert p.trial_config(["target_epochs=3", "target=panx"]).target_epochs == 3


def test_user_search_space_wins_over_recipe_and_trial_overrides():
    p = load_preset("paper-base")
    sweep = p.sweep_config(["target=xquad", "batch_size=8"], space={"batch_size": [4]},
                           trials=5)
    assert tuple(sweep.space.batch_size) == (4,) and sweep.trials == 5
    assert tuple(sweep.space.target_epochs) == (2,)  # the rest of the space is the preset's
    assert tuple(sweep.space.tasks) == tuple(p.search["space"]["tasks"])


def test_a_searched_space_key_is_left_to_the_search():
    p = parse_preset(DEMO_TRIAL + "targets: {demo-sentiment: {batch_size: 8, target_epochs: 3}}",
                     name="t")
    cfg, sweep = p.trial_config(), p.sweep_config()
    assert (cfg.batch_size, cfg.target_epochs) == (8, 3)
    assert tuple(sweep.space.batch_size) == (16, 32)  # searched: left alone
    assert tuple(sweep.space.target_epochs) == (3,)  # fixed: follows the recipe


def test_recipe_applies_only_to_its_target():
    p = load_preset("paper-base")
    assert p.trial_config(["target=pawsx"]).target_epochs == 5
    assert p.trial_config().target_epochs == 2  # the preset's own target, xnli


@pytest.mark.parametrize("targets, expected", [
    ("{nope: {target_epochs: 2}}", ["'nope' is not a target task", "xnli"]),
    ("{mnli: {target_epochs: 2}}", ["'mnli' is not a target task"]),  # an intermediate task
    ("{panx: {epochs: 10}}", ["targets.panx: unknown key 'epochs'", "target_epochs"]),
    ("{panx: {target: xnli}}", ["targets.panx: sets 'target'"]),
    ("{panx: {target_epochs: 0}}", ["targets.panx: target_epochs=0.0 is out of range"]),
    ("{panx: {batch_size: many}}", ["targets.panx: batch_size='many': expected an integer"]),
    ("{panx: 10}", ["targets.panx must be a mapping"]),
    ("[panx]", ["'targets' must be a mapping"]),
])
def test_bad_targets_are_refused_naming_what_is_wrong(targets, expected):
    with pytest.raises(ConfigError) as info:
        parse_preset(f"{DEMO_TRIAL}targets: {targets}\n", name="bad")
    for text in expected:
        assert text in str(info.value)


def test_every_problem_of_a_targets_section_is_reported_at_once():
    text = DEMO_TRIAL + "targets: {nope: {}, panx: {epochs: 1}, udpos: {target: xnli}}\n"
    with pytest.raises(ConfigError) as info:
        parse_preset(text, name="bad")
    assert len(info.value.problems) == 3
    message = str(info.value)
    assert "'nope'" in message and "'epochs'" in message and "targets.udpos" in message


def test_other_keys_the_space_fixes_follow_the_recipe_too():
    space = "target_epochs: [8], learning_rate: [1.0e-3, 1.0e-3], model_sizes: [tiny]"
    text = DEMO_TRIAL.replace("target_epochs: [8]", space) + (
        "targets: {demo-sentiment: {learning_rate: 2.0e-3, intermediate_steps: 0}}\n")
    p = parse_preset(text, name="t")
    cfg, sweep = p.trial_config(), p.sweep_config()
    assert tuple(sweep.space.learning_rate) == (2e-3, 2e-3)  # a fixed range follows
    assert tuple(sweep.space.intermediate_steps) == (200, 800, 200)  # searched: the search's
    ran = _sweep_trial(cfg, sweep)
    assert ran.learning_rate == 2e-3 and ran.model_size == "tiny"


def test_demo_preset_is_unaffected():
    p = load_preset("demo")
    assert p.targets == {}
    assert p.trial_config() == TrialConfig.from_dict(p.trial)
    assert p.sweep_config() == SweepConfig.from_dict(p.search)
    assert p.sweep_config(seed=3) == SweepConfig.from_dict({**p.search, "seed": 3})
