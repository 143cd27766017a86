"""The similarity estimates (``trainables.similarity``): LogME itself, and on the demo suite
the helpful intermediate task ranked above the unhelpful one."""

from __future__ import annotations

import numpy as np
import pytest

from spaces.presets import load_preset
from trainables.similarity import estimate_pair, logme


def test_logme_is_higher_for_features_that_separate_the_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=300)
    noise = rng.normal(size=(300, 16))
    informative = noise.copy()
    informative[:, :3] += 4.0 * np.eye(3)[labels]  # three dimensions carry the class
    assert logme(informative, labels) > logme(noise, labels) + 0.1
    # a permutation of the labels breaks the link again
    assert logme(informative, rng.permutation(labels)) < logme(informative, labels) - 0.1
    with pytest.raises(ValueError, match="at least 2 examples"):
        logme(noise[:1], labels[:1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_on_the_demo_the_helpful_task_is_estimated_above_the_unhelpful_one(seed):
    # demo-polarity teaches the lexicon demo-sentiment needs, demo-topic a feature it ignores
    # (trainables.demo_suite; measured by benchmarks/demo_signal.py)
    cfg = load_preset("demo").trial_config([f"seed={seed}"])
    helpful = estimate_pair(cfg, "demo-polarity", steps=60, examples=160)
    unhelpful = estimate_pair(cfg, "demo-topic", steps=60, examples=160)
    for row in (helpful, unhelpful):
        assert row["method"] == "logme" and row["estimate"] == row["logme"]
        assert row["examples"] == 160 and row["steps"] == 60 and row["seed"] == seed
        assert np.isfinite(row["logme_pretrained"]) and -1 <= row["text_cosine"] <= 1
    # the same pretrained encoder and target features before the short training
    assert helpful["logme_pretrained"] == pytest.approx(unhelpful["logme_pretrained"])
    assert helpful["estimate"] > unhelpful["estimate"]
    assert helpful["logme_gain"] > 0 > unhelpful["logme_gain"]
