"""Training throughput per device, side by side in one run (issue 7).

    python benchmarks/throughput.py                    # GPU: base and large, K = 8 and 2
    python benchmarks/throughput.py --cpu              # CPU mode: the tiny model (CI runs it)

For each model size, three setups train XLM-R (random init, as the issue's
figures) on the same synthetic MNLI-like data (sentence pairs, lengths drawn
with mean ~44 tokens, at most 128), batch 32, for ``--seconds`` each after a
warm-up:

  (a) HF Trainer  ``XLMRobertaForSequenceClassification`` + ``Trainer``, every
                  example padded to 128 tokens, bf16 on CUDA: one trial per device
                  the way Ray Tune + HF examples run it
  (b) xstilts     one trial's training loop as a trial runs it: ``MultiTaskModel``,
                  length-grouped ``Cursor``, ``TrainStep(lean=True)`` (device-side
                  batches in shape buckets, SDPA, fused AdamW and bf16 on CUDA,
                  ``--compile [MODE]``: torch.compile, its compile time shown
                  separately; ``reduce-overhead`` also captures CUDA graphs);
                  without Ray Train's start-up
  (c) packed      K such trials at once as Ray actors sharing the device (each holds
                  1/K of the GPU; on CPU each one core), aggregate over one common
                  time window

Printed per setup: real (unpadded) tokens/s, examples/s and MFU, where

    FLOPs per real token = 6 · N + 12 · L · h · (Σ s² / Σ s)

N the encoder's parameters without its embeddings, L layers, h hidden size, s
each example's real length (the attention term of Kaplan et al. 2020 / PaLM,
averaged per token), and the peak is ``--peak-tflops`` (989: H100 bf16 dense)
on CUDA, or on CPU the fp32 matmul rate measured here at start.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BATCH = 32
MAX_LENGTH = 128
#: XLM-R's published dimensions (hub configs of FacebookAI/xlm-roberta-base / -large)
DIMS = {"base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072),
        "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                      intermediate_size=4096)}


# -- data and model ----------------------------------------------------------------------------
def synthetic_pairs(n: int, vocab: int, seed: int = 0) -> list[list[int]]:
    """MNLI-like sentence pairs as token ids: ``<s> a </s></s> b </s>``, total length
    log-normal around 44 tokens, between 12 and MAX_LENGTH."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(40), 0.45, n).astype(int), 12, MAX_LENGTH)
    out = []
    for total in lengths:
        a = max(1, int((total - 4) * 0.6))
        b = max(1, int(total) - 4 - a)
        body = rng.integers(5, vocab, size=a + b).tolist()
        out.append([0, *body[:a], 2, 2, *body[a:], 2])
    return out


def encoder_config(size: str):
    from transformers import AutoConfig, XLMRobertaConfig

    if size == "tiny":
        from spaces.models import EMBEDDED_TINY
        from trainables.embedded_default import resolve_checkpoint

        return AutoConfig.from_pretrained(resolve_checkpoint(EMBEDDED_TINY))
    return XLMRobertaConfig(vocab_size=250002, max_position_embeddings=514, type_vocab_size=1,
                            layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                            **DIMS[size])


def non_embedding_params(config) -> int:
    """N: the transformer layers' parameters (embeddings and heads left out)."""
    h, inter = config.hidden_size, config.intermediate_size
    # per layer: q, k, v, o (4h² + 4h), MLP (2·h·inter + inter + h), two LayerNorms (4h)
    return config.num_hidden_layers * (4 * h * h + 4 * h + 2 * h * inter + inter + h + 4 * h)


def flops_per_token(config, ids: list[list[int]]) -> float:
    """Training FLOPs per real token: 6·N + 12·L·h·(Σ s² / Σ s)."""
    s = np.asarray([len(x) for x in ids], dtype=np.float64)
    return (6.0 * non_embedding_params(config)
            + 12.0 * config.num_hidden_layers * config.hidden_size * float((s ** 2).sum() / s.sum()))


def cpu_peak_flops() -> float:
    """fp32 matmul FLOP/s of this process's threads (the CPU's attainable peak)."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    reps, start = 20, time.perf_counter()
    for _ in range(reps):
        a @ b
    return reps * 2 * 1024 ** 3 / (time.perf_counter() - start)


# -- (a) the HF Trainer baseline ----------------------------------------------------------------
def hf_trainer(size: str, ids, labels, device: str, seconds: float, warmup: int) -> dict:
    import torch
    from transformers import (
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        XLMRobertaForSequenceClassification,
        default_data_collator,
    )

    config = encoder_config(size)
    config.num_labels = 3
    torch.manual_seed(0)
    model = XLMRobertaForSequenceClassification(config)
    pad = config.pad_token_id
    # a plain list of features (a torch map-style dataset): no `datasets` needed here
    rows = [{"input_ids": x + [pad] * (MAX_LENGTH - len(x)),
             "attention_mask": [1] * len(x) + [0] * (MAX_LENGTH - len(x)), "labels": int(y)}
            for x, y in zip(ids, labels)]
    real: list[int] = []

    def collate(features):
        batch = default_data_collator(features)
        real.append(int(batch["attention_mask"].sum()))
        return batch

    marks: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if device == "cuda":
                torch.cuda.synchronize()
            if state.global_step == warmup:
                marks["start"], marks["step0"] = time.perf_counter(), state.global_step
            if "start" in marks and time.perf_counter() - marks["start"] >= seconds:
                marks["end"], marks["steps"] = time.perf_counter(), state.global_step
                control.should_training_stop = True

    args = TrainingArguments(
        output_dir=os.path.join(os.environ.get("TMPDIR", "/tmp"), "xstilts-bench-trainer"),
        per_device_train_batch_size=BATCH, max_steps=10**6, learning_rate=1e-5,
        bf16=device == "cuda", use_cpu=device == "cpu", save_strategy="no", report_to=[],
        logging_strategy="no", dataloader_num_workers=0, disable_tqdm=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=rows,
                      data_collator=collate, callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)  # its end-of-training line is not a figure here
    trainer.train()
    steps = marks["steps"] - marks["step0"]
    tokens = sum(real[marks["step0"]:marks["steps"]])
    return {"tokens": tokens, "examples": steps * BATCH, "seconds": marks["end"] - marks["start"]}


# -- (b) one xstilts trial's training loop -------------------------------------------------------
class LeanTrial:
    """One trial's phase-3 training loop, built and warmed up; ``measure`` trains for
    ``seconds`` (from ``start_at``, a wall-clock time, when given: packed trials share
    one window)."""

    def __init__(self, size: str, ids, labels, device: str, warmup: int,
                 compile_: str | None = None):
        import torch
        from transformers import AutoModel

        from spaces.config import TrialConfig
        from spaces.tasks import get_task
        from trainables.data import Cursor
        from trainables.encoding import Encoded
        from trainables.model import MultiTaskModel
        from trainables.step import TrainStep, attention_implementation, make_optimizer

        t0 = time.perf_counter()
        dev = torch.device(device)
        config = encoder_config(size)
        torch.manual_seed(0)
        encoder = AutoModel.from_config(config, add_pooling_layer=False,
                                        attn_implementation=attention_implementation("lean"))
        task = get_task("mnli")
        model = MultiTaskModel(encoder, [task]).to(dev)
        if compile_:
            model.encoder.compile(dynamic=False, mode=compile_)  # one graph per shape bucket
        self.split = Encoded(task, ids, labels, config.pad_token_id)
        cfg = TrialConfig(target="xnli", intermediate_tasks=("mnli",), batch_size=BATCH)
        self.cursor = Cursor("mnli", len(self.split), seed=0, global_batch=BATCH,
                             lengths=self.split.lengths(), group=cfg.group_by_length)
        self.opt, self.sched = make_optimizer(list(model.parameters()), cfg, 10**6, dev)
        self.steps = TrainStep(model, model, dev, lean=True)
        model.train()
        self._run(warmup)  # every shape bucket compiles here, when compiling
        self.steps.flush()
        #: seconds to build the model, move the data to the device and warm up (+ compile)
        self.ready_s = time.perf_counter() - t0

    def _run(self, n: int) -> None:
        for _ in range(n):
            batch = self.steps.batch(self.split, self.cursor.next(0, 1))
            self.steps("mnli", batch, self.opt, self.sched, 0, 0)

    def ready(self) -> float:
        return self.ready_s

    def measure(self, seconds: float, start_at: float | None = None) -> dict:
        if start_at is not None:
            time.sleep(max(0.0, start_at - time.time()))
        s = self.steps
        before = (s.real_tokens, s.examples, s.seconds)
        begin, start = time.time(), time.perf_counter()
        while time.perf_counter() - start < seconds:
            self._run(16)  # a flush every 16 steps: the host queues ahead between them
            s.flush()
        return {"tokens": s.real_tokens - before[0], "examples": s.examples - before[1],
                "seconds": s.seconds - before[2], "window": (begin, time.time())}


# -- (c) K trials packed on the device ------------------------------------------------------------
def packed(size: str, ids, labels, device: str, seconds: float, warmup: int, k: int,
           compile_: str | None) -> dict:
    """K trials as Ray actors, each holding 1/K of the GPU (one CPU in CPU mode), measured
    over one common window: aggregate tokens / (last end − first start)."""
    import ray

    from search.local_ray import ensure_ray

    ensure_ray(include_dashboard=False)
    actor = ray.remote(num_cpus=0 if device == "cuda" else 1,
                       num_gpus=1.0 / k if device == "cuda" else 0)(LeanTrial)
    trials = [actor.remote(size, ids, labels, device, warmup, compile_) for _ in range(k)]
    ray.get([t.ready.remote() for t in trials])
    start_at = time.time() + 1.0
    out = ray.get([t.measure.remote(seconds, start_at) for t in trials])
    for t in trials:
        ray.kill(t)
    begin = min(o["window"][0] for o in out)
    end = max(o["window"][1] for o in out)
    return {"tokens": sum(o["tokens"] for o in out), "examples": sum(o["examples"] for o in out),
            "seconds": end - begin}


def _release(device: str) -> None:
    """Free what a finished setup held, so the next one has the device to itself."""
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="CPU mode: the tiny model")
    parser.add_argument("--sizes", nargs="+", help="model sizes (default: base large; CPU: tiny)")
    parser.add_argument("--packed", type=int, nargs="+",
                        help="K per size, in --sizes order (default: 8 2; CPU: 2)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per setup")
    parser.add_argument("--warmup", type=int, default=10, help="steps before the window")
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--compile", nargs="?", const="default", metavar="MODE",
                        choices=("default", "reduce-overhead", "max-autotune"),
                        help="torch.compile the encoder, in MODE (default: default; "
                             "reduce-overhead adds CUDA graphs)")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="device peak for MFU (CUDA; default H100 bf16 dense)")
    args = parser.parse_args(argv)

    import torch

    device = "cpu" if args.cpu else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: run with --cpu for the CPU mode", file=sys.stderr)
        return 2
    sizes = args.sizes or (["tiny"] if args.cpu else ["base", "large"])
    ks = args.packed or ([2] if args.cpu else [8, 2][:len(sizes)] + [2] * (len(sizes) - 2))
    if len(ks) != len(sizes):
        print(f"--packed {ks}: give one K per size of {sizes}", file=sys.stderr)
        return 2
    peak = cpu_peak_flops() if args.cpu else args.peak_tflops * 1e12
    where = (f"CPU, {torch.get_num_threads()} threads, fp32 matmul peak measured "
             f"{peak / 1e9:.1f} GFLOP/s" if args.cpu
             else f"{torch.cuda.get_device_name()}, peak {args.peak_tflops:.0f} TFLOP/s (bf16)")
    print(f"throughput: {where}; batch {BATCH}, {args.seconds:.0f} s per setup after "
          f"{args.warmup} warm-up steps"
          f"{f', torch.compile mode {args.compile}' if args.compile else ''}")
    for size, k in zip(sizes, ks):
        config = encoder_config(size)
        ids = synthetic_pairs(args.examples, config.vocab_size)
        labels = np.random.default_rng(1).integers(0, 3, len(ids))
        per_token = flops_per_token(config, ids)
        mean = np.mean([len(x) for x in ids])
        print(f"\n{size}: {per_token / 1e6:,.2f} MFLOP per real token (6·N + 12·L·h·Σs²/Σs), "
              f"mean length {mean:.1f} tokens")
        base: list[float] = []

        def show(label: str, r: dict) -> None:
            """One setup's line, printed as soon as it is measured."""
            tps = r["tokens"] / r["seconds"]
            base.append(base[0] if base else tps)
            print(f"  {label:<44} {tps:>11,.0f} real tokens/s  "
                  f"{r['examples'] / r['seconds']:>8,.1f} examples/s  "
                  f"MFU {100 * tps * per_token / peak:5.2f} %  {tps / base[0]:5.2f}× (a)",
                  flush=True)

        show("(a) HF Trainer, pad to 128",
             hf_trainer(size, ids, labels, device, args.seconds, args.warmup))
        _release(device)
        trial = LeanTrial(size, ids, labels, device, args.warmup, args.compile)
        show(f"(b) xstilts, one trial (ready in {trial.ready_s:.1f} s)",
             trial.measure(args.seconds))
        del trial
        _release(device)  # the packed trials get the whole device
        show(f"(c) xstilts, {k} trials packed",
             packed(size, ids, labels, device, args.seconds, args.warmup, k, args.compile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
