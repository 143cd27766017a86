import math

import numpy as np
import pytest

from trainables import calibration as cal


def test_ece_hand_computed_with_empty_bins():
    # 4 examples, 2 classes, 10 bins: confidences 0.9, 0.9 (bin 9), 0.6, 0.55 (bin 5); bins 0-4,6-8 empty
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.45, 0.55]])
    labels = np.array([0, 0, 0, 1])
    # bin 9: acc 0.5, conf 0.9 -> |.| = 0.4, weight 2/4; bin 5 (0.5,0.6]: acc 1, conf 0.575 -> 0.425, weight 2/4
    assert cal.ece(probs, labels, n_bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.425)
    assert cal.mce(probs, labels, n_bins=10) == pytest.approx(0.425)


def test_bin_edges_are_right_closed():
    # conf exactly 0.6 belongs to bin (0.5, 0.6], not (0.6, 0.7]
    probs = np.array([[0.6, 0.4], [0.65, 0.35]])
    labels = np.array([1, 0])
    # bin (0.5,0.6]: acc 0, conf 0.6 -> 0.6; bin (0.6,0.7]: acc 1, conf 0.65 -> 0.35
    assert cal.ece(probs, labels, n_bins=10) == pytest.approx(0.5 * 0.6 + 0.5 * 0.35)
    assert cal.mce(probs, labels, n_bins=10) == pytest.approx(0.6)


def test_perfectly_calibrated_case_has_zero_ece():
    # 10 examples at confidence 0.8, 8 of them right
    probs = np.tile([[0.8, 0.2]], (10, 1))
    labels = np.array([0] * 8 + [1] * 2)
    assert cal.ece(probs, labels, n_bins=15) == pytest.approx(0.0, abs=1e-12)
    assert cal.mce(probs, labels, n_bins=15) == pytest.approx(0.0, abs=1e-12)
    assert cal.accuracy(probs, labels) == pytest.approx(0.8)


def test_brier_and_nll_hand_computed():
    probs = np.array([[0.7, 0.2, 0.1], [0.5, 0.25, 0.25]])
    labels = np.array([0, 1])
    brier = ((0.3**2 + 0.2**2 + 0.1**2) + (0.5**2 + 0.75**2 + 0.25**2)) / 2
    assert cal.brier(probs, labels) == pytest.approx(brier)
    assert cal.nll(probs, labels) == pytest.approx(-(math.log(0.7) + math.log(0.25)) / 2)


def test_temperature_scaling_lowers_nll_of_overconfident_model():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=500)
    logits = rng.normal(size=(500, 3))
    logits[np.arange(500), labels] += 1.0  # right ~60% of the time ...
    logits *= 6.0  # ... with near-certain confidence
    t = cal.fit_temperature(logits, labels)
    assert t > 2.0
    before = cal.nll(cal.softmax(logits), labels)
    after = cal.nll(cal.softmax(logits, t), labels)
    assert after < 0.7 * before
    assert cal.ece(cal.softmax(logits, t), labels) < cal.ece(cal.softmax(logits), labels)
    # accuracy is unchanged by a temperature
    assert cal.accuracy(cal.softmax(logits, t), labels) == cal.accuracy(cal.softmax(logits), labels)


def test_fitted_temperature_is_a_minimum():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=200)
    logits = rng.normal(size=(200, 2)) * 3
    logits[np.arange(200), labels] += 3.0  # informative, so the optimum is interior
    t = cal.fit_temperature(logits, labels)
    best = cal.nll(cal.softmax(logits, t), labels)
    for other in (t * 0.8, t * 1.25):
        assert cal.nll(cal.softmax(logits, other), labels) > best
