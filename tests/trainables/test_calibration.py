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


def test_reliability_bins_reproduce_ece_and_mce():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, size=(500, 3))
    labels = rng.integers(0, 3, size=500)
    probs = cal.softmax(logits)
    bins = cal.reliability(probs, labels, n_bins=15)
    assert all(cal.is_reliability_key(k) and cal.is_reliability_key(k + "_ts") for k in bins)
    assert not cal.is_reliability_key("ece") and not cal.is_reliability_key("bin_ece")
    assert assert_reliability_matches(bins, ece=cal.ece(probs, labels, 15), n=500)
    mce = max(abs(bins[f"{k}_accuracy"] - bins[f"{k}_confidence"])
              for k in {k.split("_")[0] for k in bins})
    assert mce == pytest.approx(cal.mce(probs, labels, 15), abs=1e-12)
    # a confidence of exactly 1/3 lies in bin 05 of 15 ((4/15, 5/15]): right-closed, as ece bins
    flat = cal.reliability(np.full((4, 3), 1 / 3), np.array([0, 1, 2, 0]), n_bins=15)
    assert flat == {"bin05_count": 4.0, "bin05_confidence": pytest.approx(1 / 3),
                    "bin05_accuracy": 0.5}


def assert_reliability_matches(bins: dict, *, ece: float, n: int, suffix: str = "",
                               n_bins: int = 15) -> bool:
    """Reliability bins (``binNN_count`` ... with ``suffix``) that count ``n`` examples and
    give back ``ece`` as Σ count/n·|accuracy − confidence|."""
    names = {k[:5] for k in bins if k.endswith(f"_count{suffix}")}
    assert names, "no reliability bins"
    counts = {b: bins[f"{b}_count{suffix}"] for b in names}
    assert sum(counts.values()) == n
    for b in names:
        assert 0.0 <= bins[f"{b}_accuracy{suffix}"] <= 1.0
        lo, hi = (int(b[3:]) - 1) / n_bins, int(b[3:]) / n_bins  # the confidence is in its bin
        assert lo - 1e-12 <= bins[f"{b}_confidence{suffix}"] <= hi + 1e-12
    gaps = math.fsum(counts[b] / n * abs(bins[f"{b}_accuracy{suffix}"]
                                         - bins[f"{b}_confidence{suffix}"]) for b in names)
    assert gaps == pytest.approx(ece, abs=1e-9)
    return True
