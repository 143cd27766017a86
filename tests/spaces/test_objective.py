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
