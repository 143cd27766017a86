"""Zero-shot evaluation under bf16 autocast against fp32, on the demo target (issue 16).

    python benchmarks/eval_bf16.py [--steps 80] [--seed 0] [--device cpu|cuda] [--repeats 3]

Trains the embedded tiny model on ``demo-sentiment`` in English for ``--steps``
target steps as a trial's phase 3 does (``TrainStep``, the trial's ``Cursor``; no
phase 2, no Ray), then scores it with ``trainables.evaluation.evaluate`` twice:
forward passes in fp32 and under bf16 autocast (logits upcast before softmax,
the temperature fit and ECE either way). Prints per language accuracy and ECE
of each precision and their difference, the zero-shot means, the fitted
temperatures, and the seconds of one evaluation in each precision (the fastest
of ``--repeats``, each repeat giving the same metrics). The device is CUDA when
there is one, else the CPU (bf16 autocast runs on both).

80 steps (16 epochs of the 160 English examples) by default: after 40, most seeds
still predict one class, logits within a few bf16 steps of each other (the case
bf16 handles worst: the head's logits are rounded to 8 significant bits).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Mapping

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from spaces.config import TrialConfig  # noqa: E402
from spaces.presets import load_preset  # noqa: E402
from trainables.evaluation import evaluate  # noqa: E402
from trainables.model import MultiTaskModel  # noqa: E402
from trainables.trial_data import TrialData  # noqa: E402

#: the largest change in accuracy or ECE that bf16 evaluation may make (issue 16)
TOLERANCE = 0.005


def demo_config(seed: int) -> TrialConfig:
    """The demo preset's trial, without phase 2 (the target is trained from the tiny model)."""
    return load_preset("demo").trial_config(["intermediate_steps=0", f"seed={seed}"])


def trained_target(cfg: TrialConfig, steps: int, device: torch.device
                   ) -> tuple[MultiTaskModel, TrialData]:
    """The tiny model after ``steps`` target steps of ``cfg``'s trial, in eval mode, and
    the data it is scored on."""
    from transformers import AutoModel, AutoTokenizer

    from spaces.models import get_model_size
    from trainables.data import Cursor
    from trainables.embedded_default import resolve_checkpoint
    from trainables.step import TrainStep, attention_implementation, make_optimizer
    from trainables.trial_data import load_trial_data

    path = resolve_checkpoint(get_model_size(cfg.model_size).checkpoint)
    data = load_trial_data(cfg, AutoTokenizer.from_pretrained(path))
    split = data.target_train
    assert split is not None, "the demo target trains"
    torch.manual_seed(cfg.seed)
    attention = attention_implementation(cfg.train_step)
    encoder = AutoModel.from_pretrained(path, add_pooling_layer=False,
                                        attn_implementation=attention)
    model = MultiTaskModel(encoder, [data.target], num_labels=data.num_labels).to(device)
    opt, sched = make_optimizer(list(model.parameters()), cfg, steps, device)
    cursor = Cursor(cfg.target, len(split), seed=cfg.seed, global_batch=cfg.batch_size,
                    lengths=split.lengths(), group=cfg.group_by_length)
    step = TrainStep(model, model, device, lean=cfg.train_step == "lean")
    model.train()
    for n in range(1, steps + 1):
        step(cfg.target, step.batch(split, cursor.next(0, 1)), opt, sched, n, n)
    step.flush()  # raises on a non-finite loss
    return model.eval(), data


def evaluate_both(model: MultiTaskModel, data: TrialData, cfg: TrialConfig,
                  device: torch.device, repeats: int = 1) -> dict[str, dict[str, float]]:
    """``evaluate``'s metrics in fp32 and bf16 (``eval_seconds``: the fastest of
    ``repeats``, each of which must give the same metrics)."""
    out: dict[str, dict[str, float]] = {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        runs = [evaluate(model, data.target, data.eval_sets, data.en_dev, cfg, device, bf16=bf16)
                for _ in range(max(1, repeats))]
        first = {k: v for k, v in runs[0].items() if k != "eval_seconds"}
        for run in runs[1:]:
            assert {k: v for k, v in run.items() if k != "eval_seconds"} == first, \
                f"{name}: repeated evaluations disagree"
        out[name] = {**first, "eval_seconds": min(r["eval_seconds"] for r in runs)}
    return out


def table(metrics: Mapping[str, Mapping[str, float]], languages: list[str]) -> str:
    """Per language and for the zero-shot means: accuracy and ECE in fp32, bf16, Δ."""
    a, b = metrics["fp32"], metrics["bf16"]
    head = (f"{'language':<10}{'acc fp32':>10}{'acc bf16':>10}{'Δ acc':>10}"
            f"{'ECE fp32':>10}{'ECE bf16':>10}{'Δ ECE':>10}")
    lines = [head, "-" * len(head)]
    rows = [(lang, f"{lang}/accuracy", f"{lang}/ece") for lang in languages]
    rows.append(("zs mean", "zs_accuracy", "zs_ece"))
    for label, acc, ece in rows:
        lines.append(f"{label:<10}{a[acc]:>10.4f}{b[acc]:>10.4f}{b[acc] - a[acc]:>+10.4f}"
                     f"{a[ece]:>10.4f}{b[ece]:>10.4f}{b[ece] - a[ece]:>+10.4f}")
    lines.append(f"{'temp.':<10}{a['temperature']:>10.4f}{b['temperature']:>10.4f}"
                 f"{b['temperature'] - a['temperature']:>+10.4f}")
    lines.append(f"{'eval s':<10}{a['eval_seconds']:>10.3f}{b['eval_seconds']:>10.3f}"
                 f"{b['eval_seconds'] / a['eval_seconds']:>9.2f}×")
    return "\n".join(lines)


def largest_change(metrics: Mapping[str, Mapping[str, float]], languages: list[str]) -> float:
    """The largest |bf16 − fp32| over every language's and the means' accuracy and ECE."""
    keys = [f"{lang}/{m}" for lang in languages for m in ("accuracy", "ece")]
    keys += ["zs_accuracy", "zs_ece"]
    return max(abs(metrics["bf16"][k] - metrics["fp32"][k]) for k in keys)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=80, help="target training steps (default 80)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda"),
                   default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=3,
                   help="evaluations per precision; the fastest is shown (default 3)")
    args = p.parse_args()
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    device = torch.device(args.device)
    cfg = demo_config(args.seed)
    model, data = trained_target(cfg, args.steps, device)
    metrics = evaluate_both(model, data, cfg, device, args.repeats)
    languages = list(data.eval_sets)
    sizes = sorted({len(s) for s in data.eval_sets.values()})
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{cfg.target}: {args.steps} target steps, seed {args.seed}, {device.type} ({name}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads), "
          f"{'/'.join(map(str, sizes))} examples per language, ECE over {cfg.ece_bins} bins\n")
    print(table(metrics, languages))
    worst = largest_change(metrics, languages)
    print(f"\nlargest |Δ| in accuracy or ECE: {worst:.4f} "
          f"({'within' if worst < TOLERANCE else 'OVER'} the {TOLERANCE} tolerance)")


if __name__ == "__main__":
    main()
