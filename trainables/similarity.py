"""How much should an intermediate task help a target? Cheap estimates, before any trial.

For one (intermediate task, target) pair, from the pretrained encoder of the trial's
model size:

- **LogME after a short probe** (the ``estimate`` of classification targets). Train the
  encoder ``steps`` steps on the intermediate task alone (phase 2's step, loss and
  optimizer), then compute LogME (You et al. 2021) of the target's English training
  labels on the mean-pooled last-layer features of its first ``examples`` training
  examples: the log marginal evidence of a Bayesian linear model of the labels on the
  features, per example; higher when the features separate the target's classes. It
  needs no target fine-tuning and no hyperparameter, and it ranks pretrained models
  and source tasks like fine-tuning does (You et al. 2021; Poth et al. 2021 found it
  among the best cheap selectors for intermediate tasks). ``logme_gain`` subtracts the
  pretrained encoder's LogME: what the intermediate task added.
- **Text embedding similarity** (Vu et al. 2020's TextEmb): the cosine between the mean
  pooled embeddings of the two tasks' English training texts under the pretrained
  encoder. It needs no labels, so it is the estimate of targets LogME does not apply
  to here (tagging, span QA, retrieval); it is also kept for classification targets.

Both are per (task, target) and per seed; a task used in another language (``task@lang``)
is trained on that language's data, and the target's features stay English (what
phase 3 trains on).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from spaces.config import TrialConfig

#: rows of a split embedded at once
FEATURE_BATCH = 64
#: the estimate of each target format: LogME needs one label per example
METHOD = {"classification": "logme"}
TEXT_METHOD = "text_cosine"


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of ``labels`` (class indices) given ``features`` ``[n, d]``: the mean over
    classes of the maximised log evidence per example of a Bayesian linear regression of
    the class's one-hot column (You et al. 2021, Algorithm 1: the fixed-point updates of
    the prior and noise precisions, at most 11 of them)."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    n, d = f.shape
    if n < 2:
        raise ValueError(f"LogME needs at least 2 examples, got {n}")
    # eigendecomposition of f^T f (d x d): s its eigenvalues, v its eigenvectors
    s, v = np.linalg.eigh(f.T @ f)
    s = np.clip(s, 0.0, None)
    evidences = []
    for c in np.unique(y):
        target = (y == c).astype(np.float64)
        projected = v.T @ (f.T @ target)
        alpha, beta = 1.0, 1.0
        for _ in range(11):
            gamma = (beta * s / (alpha + beta * s)).sum()
            m = v @ (projected * beta / (alpha + beta * s))
            alpha_de = float(m @ m)
            beta_de = float(((target - f @ m) ** 2).sum())
            new_alpha, new_beta = gamma / max(alpha_de, 1e-12), (n - gamma) / max(beta_de, 1e-12)
            done = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 0.01
            alpha, beta = new_alpha, new_beta
            if done:
                break
        evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta)
                    - 0.5 * np.log(alpha + beta * s).sum() - beta / 2 * beta_de
                    - alpha / 2 * alpha_de - n / 2 * np.log(2 * np.pi))
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


@torch.no_grad()
def features(model, split, device: torch.device, examples: int) -> np.ndarray:
    """Mean-pooled last-layer embeddings ``[rows, hidden]`` of the first ``examples`` rows of
    a training split (a multiple-choice example: the mean over its choices)."""
    model.eval()
    layer = model.encoder.config.num_hidden_layers
    rows = min(len(split), examples)
    out = []
    for start in range(0, rows, FEATURE_BATCH):
        batch = split.batch(np.arange(start, min(rows, start + FEATURE_BATCH)))
        ids, mask = batch["input_ids"], batch["attention_mask"]
        per = ids.shape[1] if ids.dim() == 3 else 1
        emb = model.embed(ids.reshape(-1, ids.shape[-1]).to(device),
                          mask.reshape(-1, mask.shape[-1]).to(device), layer)
        out.append(emb.float().cpu().numpy().reshape(len(ids), per, -1).mean(1))
    return np.concatenate(out).astype(np.float64)


def estimate_pair(cfg: TrialConfig, task: str, *, steps: int, examples: int) -> dict[str, Any]:
    """The estimates for (``task``, ``cfg.target``) at ``cfg.model_size`` and ``cfg.seed``:
    one row of ``similarity.parquet`` (see the module's docstring)."""
    from transformers import AutoModel, AutoTokenizer

    from spaces.models import get_model_size
    from spaces.tasks import get_task
    from trainables.data import Cursor
    from trainables.embedded_default import resolve_checkpoint
    from trainables.model import MultiTaskModel
    from trainables.step import TrainStep, attention_implementation, make_optimizer
    from trainables.trial_data import load_trial_data

    import datasets
    from transformers.utils import logging as hf_logging

    # one progress bar (the caller's), not the loaders' bars for every pair
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    start = time.monotonic()
    cfg = cfg.replace(intermediate_tasks=[task], weights={})
    target = get_task(cfg.target)
    device = torch.device("cuda" if cfg.use_gpu and torch.cuda.is_available() else "cpu")
    path = resolve_checkpoint(get_model_size(cfg.model_size).checkpoint)
    data = load_trial_data(cfg, AutoTokenizer.from_pretrained(path), scoring=False)
    if data.target_train is None:
        raise ValueError(f"target {cfg.target!r} has no training data (a retrieval target): "
                         "there is nothing to estimate transfer to; choose a target that trains")
    torch.manual_seed(cfg.seed)
    encoder = AutoModel.from_pretrained(path, add_pooling_layer=False,
                                        attn_implementation=attention_implementation(cfg.train_step))
    inter = get_task(task)
    model = MultiTaskModel(encoder, [inter], num_labels=data.num_labels).to(device)
    split = data.inter_train[task]
    before = features(model, data.target_train, device, examples)
    text = cosine(features(model, split, device, examples).mean(0), before.mean(0))
    method = METHOD.get(target.format, TEXT_METHOD)
    labels = np.asarray(data.target_train.labels)[:len(before)] if method == "logme" else None
    pretrained = logme(before, labels) if labels is not None else float("nan")

    opt, sched = make_optimizer(list(model.parameters()), cfg, steps, device)
    cursor = Cursor(task, len(split), seed=cfg.seed, global_batch=cfg.batch_size,
                    lengths=split.lengths(), group=cfg.group_by_length)
    step = TrainStep(model, model, device, lean=cfg.train_step == "lean")
    model.train()
    for n in range(1, steps + 1):
        step(task, step.batch(split, cursor.next(0, 1)), opt, sched, n, n)
    step.flush()  # raises on a non-finite loss
    after = logme(features(model, data.target_train, device, examples), labels) \
        if labels is not None else float("nan")
    return {"intermediate": task, "target": cfg.target, "model_size": cfg.model_size,
            "seed": cfg.seed, "method": method,
            "estimate": after if method == "logme" else text,
            "logme": after, "logme_pretrained": pretrained, "logme_gain": after - pretrained,
            "text_cosine": text, "steps": steps, "examples": len(before),
            "seconds": time.monotonic() - start}
