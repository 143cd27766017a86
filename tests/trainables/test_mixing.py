import math

import pytest

from trainables.mixing import TaskSampler, task_probabilities

SIZES = {"a": 100, "b": 400, "c": 1600}


def test_softmax_family_exact():
    p = task_probabilities("softmax", sizes=SIZES, logits={"a": 0.0, "b": math.log(2), "c": math.log(5)})
    assert p == pytest.approx({"a": 1 / 8, "b": 2 / 8, "c": 5 / 8})


def test_softmax_missing_logits_are_zero():
    p = task_probabilities("softmax", sizes={"a": 1, "b": 1}, logits={})
    assert p == pytest.approx({"a": 0.5, "b": 0.5})


def test_proportional_family_exact_with_and_without_cap():
    assert task_probabilities("proportional", sizes=SIZES) == pytest.approx(
        {"a": 100 / 2100, "b": 400 / 2100, "c": 1600 / 2100})
    assert task_probabilities("proportional", sizes=SIZES, cap=400) == pytest.approx(
        {"a": 1 / 9, "b": 4 / 9, "c": 4 / 9})


def test_temperature_family_exact():
    # p ∝ n^(1/2): 10, 20, 40
    assert task_probabilities("temperature", sizes=SIZES, temperature=2.0) == pytest.approx(
        {"a": 10 / 70, "b": 20 / 70, "c": 40 / 70})
    # with cap 400: 10, 20, 20
    assert task_probabilities("temperature", sizes=SIZES, temperature=2.0, cap=400) == pytest.approx(
        {"a": 0.2, "b": 0.4, "c": 0.4})


def test_unknown_family_names_the_choices():
    with pytest.raises(ValueError, match="softmax, proportional or temperature"):
        task_probabilities("uniformish", sizes=SIZES)


def test_sampler_draws_follow_probabilities_and_are_seeded():
    p = {"a": 0.1, "b": 0.3, "c": 0.6}
    draws = [TaskSampler(p, seed=7).draw() for _ in range(1)]
    s1, s2 = TaskSampler(p, seed=7), TaskSampler(p, seed=7)
    seq1 = [s1.draw() for _ in range(5000)]
    seq2 = [s2.draw() for _ in range(5000)]
    assert seq1 == seq2 and draws[0] == seq1[0]
    for name, prob in p.items():
        assert seq1.count(name) / 5000 == pytest.approx(prob, abs=0.02)
    assert seq1 != [TaskSampler(p, seed=8).draw() for _ in range(5000)]


def test_sampler_state_restores_the_sequence():
    p = {"a": 0.5, "b": 0.5}
    s = TaskSampler(p, seed=3)
    [s.draw() for _ in range(17)]
    state = s.state_dict()
    rest = [s.draw() for _ in range(50)]
    t = TaskSampler(p, seed=999)
    t.load_state_dict(state)
    assert [t.draw() for _ in range(50)] == rest
