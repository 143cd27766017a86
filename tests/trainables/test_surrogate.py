import pytest

from spaces.config import TrialConfig
from trainables.surrogate import surrogate_accuracy, surrogate_metrics, surrogate_optimum


def test_surrogate_optimum_is_reached_by_the_known_best_config():
    best = TrialConfig(intermediate_tasks=("demo-polarity", "demo-match"), mixing="softmax",
                       weights={"demo-polarity": 3.0, "demo-match": -3.0}, learning_rate=2.5e-3,
                       warmup_ratio=0.1, intermediate_steps=500)
    acc = surrogate_accuracy(best)
    assert acc - 0.05 == pytest.approx(surrogate_optimum(), abs=1e-12)
    worse = [best.replace(intermediate_tasks=["demo-topic"], weights={}),
             best.replace(learning_rate=1e-3), best.replace(intermediate_steps=200),
             best.replace(mixing="proportional", weights={})]
    assert all(surrogate_accuracy(w) < acc for w in worse)


def test_surrogate_noise_is_seeded_by_config():
    cfg = TrialConfig()
    assert surrogate_metrics(cfg) == surrogate_metrics(cfg)
    assert surrogate_metrics(cfg)["score"] != surrogate_metrics(cfg.replace(seed=1))["score"]
    m = surrogate_metrics(cfg, noise=0.0)
    assert m["score"] == pytest.approx(m["zs_accuracy"] - m["zs_ece"])
