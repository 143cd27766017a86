
import statistics

import optuna
import pytest

from spaces.config import TrialConfig
from spaces.objective import budget
from spaces.presets import load_preset
from spaces.space import SpaceSpec, define_space, suggested_config
from trainables.surrogate import (
    PROBE_BIAS,
    PROBE_GAP,
    PROBE_NOISE,
    surrogate_accuracy,
    surrogate_curve,
    surrogate_longest,
    surrogate_metrics,
    surrogate_optimum,
    surrogate_phases,
)


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
        value = surrogate_metrics(suggested_config(base, trial.params, spec), noise=0.0)["score"]
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


def test_phases_are_counted_as_a_model_trial_counts_them():
    paper = load_preset("paper-base").trial_config()
    # XNLI trains on MNLI's 392,702 examples: 2 epochs of ceil(392702 / 32) = 12,272 steps
    assert surrogate_phases(paper) == (20000, 24544)
    demo = load_preset("demo").trial_config()
    assert surrogate_phases(demo) == (600, 40)  # 8 epochs of the demo target's 160 examples
    assert surrogate_phases(demo.replace(max_train_examples=64)) == (600, 16)
    assert surrogate_phases(paper.replace(target="bucc", eval_languages=())) == (20000, 0)
    spec = load_preset("demo").sweep_config().space  # phase 2 200-500 steps by 100
    assert surrogate_longest(demo, spec) == (500, 40)
    wider = SpaceSpec.from_dict({**spec.to_dict(), "batch_size": [16, 32], "target_epochs": [4, 8]})
    assert surrogate_longest(demo, wider) == (500, 80)


@pytest.mark.parametrize("two_phase", [True, False])
def test_the_curve_ends_at_the_final_value_whichever_way_the_budget_counts(two_phase):
    cfg = load_preset("paper-base").trial_config().replace(intermediate_steps=10000)
    steps_2, steps_3 = surrogate_phases(cfg)
    total = budget(steps_2, steps_3, two_phase=two_phase)
    assert surrogate_curve(cfg, total, two_phase=two_phase) == surrogate_metrics(cfg)
    # a point of training reads the same whether the budget counts phase 2 or not
    for step_3 in (1, 5000, steps_3 - 1):
        assert surrogate_curve(cfg, steps_2 + step_3, two_phase=True) == \
            surrogate_curve(cfg, step_3, two_phase=False)
    assert surrogate_curve(cfg, steps_2 + 5000, two_phase=True) != \
        surrogate_curve(cfg, steps_2 + 5001, two_phase=True)


def test_phase_3_evaluations_climb_to_the_final_value_less_noisy_as_they_go():
    p = load_preset("paper-base")
    spec, base = p.sweep_config().space, p.trial_config()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    gaps: dict[float, list[float]] = {0.25: [], 0.75: []}
    for _ in range(300):
        trial = study.ask()
        define_space(trial, spec)
        cfg = suggested_config(base, trial.params, spec)
        steps_2, steps_3 = surrogate_phases(cfg)
        final = surrogate_metrics(cfg)["score"]
        for g in gaps:
            gaps[g].append(final - surrogate_curve(
                cfg, steps_2 + round(g * steps_3), two_phase=True)["score"])
    for g, diffs in gaps.items():  # below the final value by PROBE_BIAS·(1 − g), noisily
        assert statistics.mean(diffs) == pytest.approx(PROBE_BIAS * (1 - g), abs=0.003)
        assert statistics.stdev(diffs) == pytest.approx(PROBE_NOISE * (1 - g), rel=0.2)


def test_a_probe_ranks_configs_like_the_final_score_noisily_and_lower():
    p = load_preset("paper-base")
    spec, base = p.sweep_config().space, p.trial_config()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    finals, halfway, end = [], [], []
    for _ in range(300):
        trial = study.ask()
        define_space(trial, spec)
        cfg = suggested_config(base, trial.params, spec)
        steps_2, _ = surrogate_phases(cfg)
        finals.append(surrogate_metrics(cfg)["score"])
        halfway.append(surrogate_curve(cfg, steps_2 // 2, two_phase=True)["score"])
        end.append(surrogate_curve(cfg, steps_2, two_phase=True)["score"])
        assert halfway[-1] == surrogate_curve(cfg, steps_2 // 2, two_phase=True)["score"]
    for probes, gap in ((halfway, PROBE_BIAS + PROBE_GAP / 2), (end, PROBE_BIAS)):
        diffs = [f - q for f, q in zip(finals, probes)]
        assert statistics.mean(diffs) == pytest.approx(gap, abs=0.003)  # lower, by the gap
        assert statistics.stdev(diffs) == pytest.approx(PROBE_NOISE, rel=0.2)  # noisy
        assert _spearman(finals, probes) > 0.9  # but ranks configs like the final score
    # two probes of one trial draw their own noise
    assert statistics.stdev(h - e for h, e in zip(halfway, end)) > PROBE_NOISE


def _spearman(a, b) -> float:
    rank = lambda xs: {i: r for r, i in enumerate(sorted(range(len(xs)), key=xs.__getitem__))}
    ra, rb = rank(a), rank(b)
    n = len(a)
    return 1 - 6 * sum((ra[i] - rb[i]) ** 2 for i in range(n)) / (n * (n * n - 1))
