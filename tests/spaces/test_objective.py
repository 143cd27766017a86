import pytest

from spaces.objective import macro_mean, score


def test_score_is_accuracy_minus_weighted_ece():
    assert score(0.8, 0.05, weight=1.0) == pytest.approx(0.75)
    assert score(0.8, 0.05, weight=2.0) == pytest.approx(0.70)
    assert score(0.8, 0.05, weight=0.0) == pytest.approx(0.80)


def test_score_rejects_values_outside_unit_interval():
    with pytest.raises(ValueError, match="fractions in \\[0, 1\\]"):
        score(80.0, 0.05, weight=1.0)


def test_macro_mean_excludes_training_language():
    assert macro_mean({"en": 0.9, "de": 0.8, "sw": 0.5}, exclude="en") == pytest.approx(0.65)
    with pytest.raises(ValueError, match="no zero-shot language"):
        macro_mean({"en": 0.9}, exclude="en")


def test_objective_uses_the_ece_objective_ece_names():
    from spaces.config import ConfigError, TrialConfig
    from spaces.objective import objective, tune_keys

    means = {"zs_accuracy": 0.6, "zs_ece": 0.25, "zs_ece_ts": 0.05}
    assert objective(means, weight=1.0) == pytest.approx(0.35)  # raw: the default
    assert objective(means, weight=1.0, ece="scaled") == pytest.approx(0.55)
    assert objective({"zs_accuracy": 0.7}, weight=1.0) == 0.7  # retrieval: no ECE
    assert tune_keys("multi", "scaled")[:3] == ("score", "zs_accuracy", "zs_ece_ts")
    assert "zs_ece_ts" not in tune_keys("scalar", "scaled")
    # a config at the default keeps its hash; another choice is another config
    assert TrialConfig().config_hash() == TrialConfig(objective_ece="raw").config_hash()
    assert TrialConfig(objective_ece="scaled").config_hash() != TrialConfig().config_hash()
    with pytest.raises(ConfigError, match="objective_ece='calibrated' is unknown; choose one "
                                          "of: raw, scaled"):
        TrialConfig(objective_ece="calibrated")
