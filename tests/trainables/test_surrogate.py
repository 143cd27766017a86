
import optuna
import pytest

from spaces.config import TrialConfig
from spaces.presets import load_preset
from spaces.space import SpaceSpec, define_space, trial_config
from trainables.surrogate import surrogate_accuracy, surrogate_metrics, surrogate_optimum


def test_surrogate_optimum_is_reached_by_the_known_best_config():
    spec = load_preset("demo").sweep_config().space
    best = TrialConfig(intermediate_tasks=("demo-polarity", "demo-match"), mixing="softmax",
                       weights={"demo-polarity": 3.0, "demo-match": -3.0}, learning_rate=2.5e-3,
                       warmup_ratio=0.1, intermediate_steps=500)
    acc = surrogate_accuracy(best)
    assert acc - 0.05 == pytest.approx(surrogate_optimum(spec), abs=1e-12)
    worse = [best.replace(intermediate_tasks=["demo-topic"], weights={}),
             best.replace(learning_rate=1e-3), best.replace(intermediate_steps=200),
             best.replace(mixing="proportional", weights={}),
             best.replace(intermediate_tasks=["demo-polarity", "demo-match", "demo-tags"])]
    assert all(surrogate_accuracy(w) < acc for w in worse)


@pytest.mark.parametrize("preset", ["demo", "paper-base"])
def test_no_point_of_the_space_beats_the_optimum_and_a_search_gets_close(preset):
    """Random points never exceed the closed-form optimum; a long random search
    comes within a small margin of it (so it is the space's maximum, not a bound)."""
    p = load_preset(preset)
    spec, base = p.sweep_config().space, p.trial_config()
    optimum = surrogate_optimum(spec, base.objective_weight)
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=50)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    best = -1.0
    for _ in range(600):
        trial = study.ask()
        define_space(trial, spec)
        value = surrogate_metrics(trial_config(base, trial.params, spec), noise=0.0)["score"]
        study.tell(trial, value)
        assert value <= optimum + 1e-12
        best = max(best, value)
    assert optimum - best < 0.02, (optimum, best)


def test_the_optimum_follows_the_space():
    small = SpaceSpec(tasks=("demo-topic", "demo-tags"), mixing=("proportional",),
                      learning_rate=(1e-3, 1e-3), warmup_ratio=(0.1, 0.1),
                      intermediate_steps=(250, 250, 1))
    # the best subset is demo-tags alone: gain 0, no topic ECE
    cfg = TrialConfig(intermediate_tasks=("demo-tags",), learning_rate=1e-3, warmup_ratio=0.1,
                      intermediate_steps=250)
    assert surrogate_optimum(small) == pytest.approx(surrogate_accuracy(cfg) - 0.05, abs=1e-12)


def test_surrogate_noise_is_seeded_by_config():
    cfg = TrialConfig()
    assert surrogate_metrics(cfg) == surrogate_metrics(cfg)
    assert surrogate_metrics(cfg)["score"] != surrogate_metrics(cfg.replace(seed=1))["score"]
    m = surrogate_metrics(cfg, noise=0.0)
    assert m["score"] == pytest.approx(m["zs_accuracy"] - m["zs_ece"])
