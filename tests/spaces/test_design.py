"""Designed sweeps (``search.arms``): every arm at every seed and model size, enqueued in
order; and the question presets that use them (``spaces/presets/questions``)."""

import pytest

from spaces.config import ConfigError
from spaces.presets import load_preset, preset_names
from spaces.sweep import SweepConfig, design_points

TASKS = ["demo-polarity", "demo-topic", "demo-match"]


def _sweep(**search):
    return SweepConfig.from_dict({"asha_grace": 0, **search})


def test_design_points_run_every_arm_at_every_seed_seed_by_seed():
    s = _sweep(trials=6, arms=[["demo-polarity"], TASKS],
               space={"tasks": TASKS, "mixing": ["proportional"], "seeds": [3, 7, 9]})
    points = design_points(s)
    assert [(tuple(t for t in TASKS if p[f"task/{t}"]), p["seed"]) for p in points] == [
        (("demo-polarity",), 3), (tuple(TASKS), 3), (("demo-polarity",), 7), (tuple(TASKS), 7),
        (("demo-polarity",), 9), (tuple(TASKS), 9)]  # a cut sweep keeps whole seeds
    assert "model_size" not in points[0]  # one size: the space's, not drawn
    # with two model sizes, each arm runs at both
    s2 = _sweep(trials=4, arms=[["demo-match"]],
                space={"tasks": TASKS, "model_sizes": ["tiny", "base"], "seeds": [0, 1]})
    assert [(p["model_size"], p["seed"]) for p in design_points(s2)] == [
        ("tiny", 0), ("base", 0), ("tiny", 1), ("base", 1)]
    assert SweepConfig.from_dict(s.to_dict()) == s  # through the manifest and back


def test_a_design_that_does_not_add_up_is_refused_with_what_to_set():
    with pytest.raises(ConfigError) as err:
        SweepConfig.from_dict({"trials": 5, "asha_grace": 10, "arms": [["nope"], ["demo-topic"],
                                                                         ["demo-topic"]],
                               "space": {"tasks": TASKS, "seeds": [0, 1]}})
    text = str(err.value)
    assert "['nope'] must be a non-empty subset of search.space.tasks" in text
    assert "lists an arm twice" in text
    assert "trials=5: a designed sweep runs each of its 3 arms once per seed (2)" in text
    assert "set trials: 6" in text and "set asha_grace: 0" in text
    with pytest.raises(ConfigError, match="expected a list of task lists"):
        SweepConfig.from_dict({"arms": "demo-topic"})
    with pytest.raises(ConfigError, match="seeds=\\[1, 1\\]: expected distinct integers"):
        SweepConfig.from_dict({"space": {"seeds": [1, 1]}})


QUESTIONS = ("q-calibration-multitask", "q-model-size", "q-retrieval-lowres", "q-domain-shift")


@pytest.mark.parametrize("name", QUESTIONS)
def test_each_question_has_a_demo_and_a_paper_preset_that_state_it(name):
    assert name in preset_names() and f"{name}-paper" in preset_names()
    for variant in (name, f"{name}-paper"):
        preset = load_preset(variant)
        assert preset.description.startswith("Question:"), variant
        sweep, base = preset.sweep_config(), preset.trial_config()
        assert sweep.arms and sweep.trials == len(design_points(sweep))
        assert base.use_gpu == variant.endswith("-paper")  # demo variants run here, on CPU
        assert (base.model_size == "tiny") != variant.endswith("-paper")
    demo = load_preset(name)
    assert demo.trial_config().ood_targets == (
        ("demo-sentiment-ood",) if name in ("q-calibration-multitask", "q-domain-shift") else ())
