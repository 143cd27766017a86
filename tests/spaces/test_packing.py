"""Trial packing: GPU shares by model size, the memory estimate, and the checks that keep
packed trials from running each other out of memory (at launch and on the GPU)."""

from __future__ import annotations

import pytest

from spaces.config import ConfigError, TrialConfig
from spaces.models import MODEL_SIZES
from spaces.packing import GIB, batch_shapes, gpu_share, train_memory_gib
from spaces.presets import load_preset
from spaces.packing import sweep_packing_problems as packing_problems

#: a 24-GiB GPU with base trials packed eight to a GPU: 3 GiB each, too little for base
TOO_TIGHT = {"use_gpu": True, "model_size": "base", "gpu_memory_gib": 24.0,
             "gpu_share": {"base": 0.125}, "max_length": 128, "batch_size": 32,
             "intermediate_tasks": ("demo-polarity",)}


def _problems(**changes) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        TrialConfig.from_dict({**TOO_TIGHT, **changes})
    return exc.value.problems


# -- the estimate ----------------------------------------------------------------------------
def test_estimate_for_base_and_large_at_batch_32_by_128_matches_the_hand_computation():
    tokens = 32 * 128
    # 16 bytes per parameter; per layer and token 34·h (+ 5·a·s eager) bytes; 0.75 GiB CUDA
    base = (16 * 278e6 + 12 * tokens * (34 * 768 + 5 * 12 * 128)) / 2**30 + 0.75
    large = (16 * 560e6 + 24 * tokens * (34 * 1024 + 5 * 16 * 128)) / 2**30 + 0.75
    shapes = {"demo-sentiment": (1, 128)}
    assert train_memory_gib("base", 32, shapes, fused_attention=False) == pytest.approx(base)
    assert train_memory_gib("large", 32, shapes, fused_attention=False) == pytest.approx(large)
    assert (round(base, 2), round(large, 2)) == (6.44, 13.22)
    fused = (16 * 278e6 + 12 * tokens * 34 * 768) / 2**30 + 0.75
    assert train_memory_gib("base", 32, shapes, fused_attention=True) == pytest.approx(fused)
    assert round(fused, 2) == 6.09


def test_estimate_counts_every_choice_of_a_multiple_choice_example():
    one = train_memory_gib("base", 8, {"demo-polarity": (1, 128)}, fused_attention=True)
    four = train_memory_gib("base", 8, {"demo-match": (4, 128)}, fused_attention=True)
    assert train_memory_gib("base", 32, {"demo-polarity": (1, 128)},
                            fused_attention=True) == pytest.approx(four)
    assert four > one
    cfg = TrialConfig(target="xnli", intermediate_tasks=("hellaswag", "commonsenseqa", "mnli"),
                      max_length=64)
    assert batch_shapes(cfg) == {"hellaswag": (4, 64), "commonsenseqa": (5, 64),
                                 "mnli": (1, 64), "xnli": (1, 64)}


def test_the_tiny_catalogue_entry_has_the_embedded_models_dimensions():
    from trainables.embedded_default import TINY_ARCH

    tiny = MODEL_SIZES["tiny"]
    assert (tiny.hidden, tiny.heads, tiny.layers) == (
        TINY_ARCH["hidden_size"], TINY_ARCH["num_attention_heads"], TINY_ARCH["num_hidden_layers"])


# -- shares ------------------------------------------------------------------------------------
def test_a_share_comes_from_the_config_else_from_the_catalogue():
    cfg = TrialConfig(gpu_share={"base": 0.25})
    assert gpu_share(cfg, "base") == 0.25
    assert gpu_share(cfg, "large") == MODEL_SIZES["large"].gpu_per_worker == 1.0
    assert gpu_share(TrialConfig(), "tiny") == 0.125
    assert gpu_share({"large": 0.5}, "large") == 0.5


def test_set_gpu_share_dot_size_reaches_the_trial_config():
    cfg = load_preset("demo").trial_config(["gpu_share.base=0.125", "gpu_share.large=0.5"])
    assert dict(cfg.gpu_share) == {"base": 0.125, "large": 0.5}
    assert cfg.config_hash() == load_preset("demo").trial_config().config_hash()  # run-only


# -- validation of a trial config ------------------------------------------------------------
def test_an_unknown_size_and_shares_outside_zero_to_one_are_refused_together():
    problems = _problems(gpu_share={"huge": 0.5, "base": 0.0, "large": 1.5}, gpu_memory_gib=0)
    assert len(problems) == 3, problems
    assert "gpu_share has an entry for 'huge', which is not a model size" in problems[0]
    assert "tiny, base, large" in problems[0]
    assert "gpu_share['base']=0.0 is out of range; expected a fraction of one GPU in (0, 1]" \
        in problems[1]
    assert "gpu_share['large']=1.5 is out of range" in problems[2]


def test_a_negative_gpu_memory_is_refused():
    (problem,) = _problems(gpu_memory_gib=-1, gpu_share={})
    assert problem.startswith("gpu_memory_gib=-1.0 is out of range") and "or 0" in problem


def test_a_share_too_small_for_the_estimate_names_estimate_share_and_fix():
    (problem,) = _problems()
    need = train_memory_gib("base", 32, {"demo-polarity": (1, 128)}, fused_attention=True)
    assert f"needs about {need:.1f} GiB" in problem
    assert "gpu_share.base=0.125 of a 24-GiB GPU is 3.0 GiB" in problem
    assert "raise gpu_share.base to at least 0.26, or lower batch_size or max_length" in problem


def test_the_fix_it_suggests_is_enough_and_the_check_needs_gpus_and_a_memory_size():
    TrialConfig.from_dict({**TOO_TIGHT, "gpu_share": {"base": 0.26}})
    TrialConfig.from_dict({**TOO_TIGHT, "use_gpu": False})
    TrialConfig.from_dict({**TOO_TIGHT, "gpu_memory_gib": 0.0})
    # a multiple-choice task in the trial multiplies the tokens: the same share is too small
    problems = _problems(gpu_share={"base": 0.26}, intermediate_tasks=("demo-match",))
    assert "max_length=128, demo-match's 4 choices per example needs" in problems[0], problems


def test_a_size_that_fits_no_share_says_to_shrink_the_batch():
    (problem,) = _problems(gpu_memory_gib=4.0, gpu_share={})
    assert "gpu_share.base=0.5 of a 4-GiB GPU is 2.0 GiB" in problem
    assert problem.endswith("lower batch_size or max_length (or raise num_workers)")


def test_workers_of_a_trial_split_its_batch():
    # four workers of batch 32 each fit 0.26 of the GPU; two of batch 64 do not
    TrialConfig.from_dict({**TOO_TIGHT, "gpu_share": {"base": 0.26}, "num_workers": 4,
                           "batch_size": 128})
    assert _problems(gpu_share={"base": 0.26}, num_workers=2, batch_size=128)


# -- a sweep's space ---------------------------------------------------------------------------
def _sweep(share: float, sizes: list[str], batches: list[int]):
    preset = load_preset("demo")
    sets = ["use_gpu=true", "gpu_memory_gib=24", f"gpu_share.base={share}"]
    return preset.trial_config(sets), preset.sweep_config(
        sets, space={"model_sizes": sizes, "batch_size": batches})


def test_every_size_of_the_space_is_checked_at_its_largest_batch():
    base, sweep = _sweep(0.5, ["tiny", "base"], [8, 32])
    assert base.model_size == "tiny"  # the base config itself fits
    assert packing_problems(base, sweep) == []  # base at batch 32: 7.3 GiB <= 12 GiB
    base, sweep = _sweep(0.25, ["tiny", "base"], [8, 32])
    (problem,) = packing_problems(base, sweep)
    # the demo space may include demo-match: four choices per example
    assert problem.startswith("search.space: model_size='base' at batch_size=32, max_length=64,"
                              ), problem
    assert "4 choices per example needs about 7.3 GiB" in problem, problem
    assert "raise gpu_share.base to at least 0.31" in problem
    assert packing_problems(base.replace(use_gpu=False), sweep) == []


def test_a_sweep_whose_space_does_not_fit_is_refused_before_launch(tmp_path, capsys):
    from search.cli import main

    code = main(["run", "demo", "--storage", str(tmp_path), "--name", "packed",
                 "--set", "use_gpu=true", "--set", "gpu_memory_gib=24",
                 "--set", "gpu_share.base=0.125", "--set", "search.space.model_sizes=[tiny, base]"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("xstilts: error:") and "Traceback" not in err
    assert "search.space: model_size='base'" in err and "raise gpu_share.base" in err, err
    assert list(tmp_path.iterdir()) == []


# -- on the GPU ------------------------------------------------------------------------------
def test_memory_verdict_caps_a_fitting_worker_at_its_share():
    from trainables.gpu_memory import memory_verdict

    assert memory_verdict(0.25, 60 * GIB, 80 * GIB, 19 * GIB) == (0.25, None, False)
    assert memory_verdict(1.0, 80 * GIB, 80 * GIB, 79 * GIB) == (1.0, None, False)


def test_memory_verdict_keeps_the_cuda_context_inside_the_share():
    from trainables.gpu_memory import memory_verdict

    # eight workers of 10 GiB on an 80-GiB GPU: each allocator gets 10 GiB less its context
    fraction, problem, _ = memory_verdict(0.125, 9.5 * GIB, 80 * GIB, int(9.5 * GIB),
                                          overhead_bytes=GIB // 2)
    assert problem is None and fraction == pytest.approx(9.5 / 80)
    # free memory is measured after its own context exists: it needs 9 GiB free, not 9.5
    assert memory_verdict(0.125, 9 * GIB, 80 * GIB, int(9.5 * GIB), overhead_bytes=GIB // 2)[1] \
        is None
    assert memory_verdict(0.125, 9 * GIB - 1, 80 * GIB, int(9.5 * GIB),
                          overhead_bytes=GIB // 2)[1] is not None


def test_memory_verdict_a_share_too_small_is_permanent():
    from trainables.gpu_memory import memory_verdict

    fraction, problem, permanent = memory_verdict(0.125, 80 * GIB, 80 * GIB, 24 * GIB)
    assert permanent and fraction == 0.125
    assert "needs about 24.0 GiB" in problem and "gpu_share 0.125 of this 80-GiB GPU is 10.0 GiB" \
        in problem and "at least 0.3" in problem


def test_memory_verdict_memory_taken_by_others_is_transient():
    from trainables.gpu_memory import memory_verdict

    fraction, problem, permanent = memory_verdict(0.5, 10 * GIB, 80 * GIB, 24 * GIB)
    assert not permanent and fraction == 0.5
    assert "only 10.0 of this 80-GiB GPU's GiB are free" in problem and "other processes" in problem


def test_claim_gpu_does_nothing_off_cuda():
    import torch

    from trainables.gpu_memory import claim_gpu

    claim_gpu(TrialConfig(), torch.device("cpu"))


def test_a_trainer_asks_ray_for_the_configs_share_per_worker(tmp_path):
    from trainables.trial import make_trainer

    cfg = TrialConfig(use_gpu=True, gpu_share={"tiny": 0.25}, num_workers=2)
    trainer = make_trainer(cfg, storage_path=str(tmp_path), name="packed")
    assert trainer.scaling_config.use_gpu and trainer.scaling_config.num_workers == 2
    assert trainer.scaling_config.resources_per_worker["GPU"] == 0.25
    plain = make_trainer(TrialConfig(use_gpu=True), storage_path=str(tmp_path), name="plain")
    assert plain.scaling_config.resources_per_worker["GPU"] == MODEL_SIZES["tiny"].gpu_per_worker


def test_a_sweep_that_would_leave_gpus_idle_is_told_so():
    from spaces.packing import idle_gpu_note
    from spaces.sweep import SweepConfig

    base = TrialConfig(use_gpu=True, model_size="base", gpu_share={"base": 0.125, "large": 0.5})
    only_base = SweepConfig.from_dict({"concurrency": 2, "space": {"model_sizes": ["base"]}})
    note = idle_gpu_note(base, only_base, gpus=1.0)
    assert note is not None and "search.concurrency=2" in note and "1 GPUs hold 8 base" in note
    assert "raise search.concurrency to 8" in note
    # a space of sizes: what the size holding the fewest trials fills
    mixed = SweepConfig.from_dict({"concurrency": 1, "space": {"model_sizes": ["base", "large"]}})
    note = idle_gpu_note(base, mixed, gpus=2.0)
    assert note is not None and "16 base, 4 large" in note and "to 4 or more" in note
    assert idle_gpu_note(base, mixed.replace(concurrency=4), gpus=2.0) is None
    assert idle_gpu_note(base.replace(use_gpu=False), only_base, gpus=1.0) is None
    assert idle_gpu_note(base, only_base, gpus=0.0) is None  # an autoscaler adds GPUs later
