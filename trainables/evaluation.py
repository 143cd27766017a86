"""Zero-shot scoring of a target in every language: its metric and its calibration.

Per format (``docs/tasks.md`` has the table):

- classification, multiple choice: accuracy; ECE, MCE, Brier, NLL of the
  softmax over labels (over choices);
- span QA: SQuAD exact match and F1 (MLQA with its per-language
  normalisation); the span as HF's ``postprocess_qa_predictions`` picks it
  (n-best start/end pairs over every doc-stride window). Calibration of the
  chosen span: its confidence is the softmax probability of the best span
  among the n-best candidates, it is correct when it matches a gold answer
  exactly; ECE, MCE and the binary Brier score;
- tagging: word accuracy (UD-POS) and seqeval entity F1 (PAN-X), each word
  tagged at its first sub-token (a word cut by ``max_length`` gets tag 0 and
  counts); ECE, MCE, Brier, NLL of the softmax at those tokens;
- retrieval: BUCC F1 (ratio-margin mining) on test with the threshold tuned on
  dev, and Tatoeba accuracy, from the mean-pooled hidden states of
  ``retrieval_layer``; their calibration as ``trainables.metrics`` defines it
  (Tatoeba: a softmax over the candidates' cosines with one temperature fitted
  on held-out pairs; BUCC: Platt scaling of the margin fitted on dev), reported
  once (``ece``, no ``_ts``: there is no unscaled probability to compare).

One temperature per evaluation, fitted by NLL on the English dev set of what
the target trains on (labels; start and end positions; first-token tags);
calibration is reported raw and scaled (``*_ts``).

The objective's accuracy term ``zs_accuracy`` is the macro mean over zero-shot
languages of the target's own metric (accuracy, F1, word accuracy, entity F1,
BUCC F1, Tatoeba accuracy): ``score = zs_accuracy - λ·zs_ece``.

Precision: with ``bf16`` on (the default on CUDA, off elsewhere) the forward passes
run under bf16 autocast, as training's do (``trainables.step``); their logits (for
retrieval the pooled embeddings) are upcast to float32 as they leave the model and
everything numeric after — softmax, the temperature fit, ECE and the metrics — is
float64 on the host. On the demo target this moves accuracy and ECE by less than
0.005 against fp32 (``tests/trainables/test_eval_bf16.py``, ``benchmarks/eval_bf16.py``);
logits nearly tied, as a model that still predicts one class gives, can move more:
the head's outputs keep 8 significant bits before they are upcast.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from typing import Any, Mapping

import numpy as np
import torch

from spaces.config import TrialConfig
from spaces.objective import ACCURACY_KEY, SCORE_KEY, macro_mean, objective
from spaces.tasks import TaskSpec
from trainables import calibration, metrics
from trainables.encoding import IGNORE_INDEX, EncodedSplit
from trainables.model import MultiTaskModel

EVAL_BATCH = 256
#: the per-language key holding each registry metric
METRIC_KEYS: Mapping[str, str] = {
    "accuracy": "accuracy", "token_accuracy": "accuracy", "tatoeba_accuracy": "accuracy",
    "f1": "f1", "entity_f1": "f1", "bucc_f1": "f1"}
#: span-QA targets scored with MLQA's per-language normalisation
MLQA_NORMALISED = frozenset({"mlqa"})
#: a padding logit that no temperature in ``fit_temperature``'s range lifts off zero
_PAD_LOGIT = -1e4


def evaluate(model: MultiTaskModel, target: TaskSpec, eval_sets: Mapping[str, EncodedSplit],
             en_dev: EncodedSplit | None, cfg: TrialConfig, device: torch.device, *,
             bf16: bool | None = None,
             fit_sets: Mapping[str, EncodedSplit] | None = None,
             ood_sets: Mapping[str, Mapping[str, EncodedSplit]] | None = None) -> dict[str, float]:
    """Per-language metric and calibration, their zero-shot means and the objective;
    ``bf16``: forward passes under bf16 autocast (None: on CUDA only); ``fit_sets``:
    BUCC's dev split per language, where its threshold and Platt scaling are fitted;
    ``ood_sets``: out-of-domain set -> language -> split, scored by the target's head at
    its temperature, as ``<set>/<lang>/<metric>`` with zero-shot means ``<set>/zs_<metric>``
    (in the objective where ``cfg.ood_in_objective``)."""
    t0 = time.perf_counter()
    bf16 = _bf16(device, bf16)
    out: dict[str, float] = {}
    per_lang: dict[str, dict[str, float]] = {}
    if target.format == "retrieval":
        per_lang, fitted = _score_retrieval(model, target, eval_sets, fit_sets or {}, cfg,
                                            device, bf16)
        out.update(fitted)
    else:
        assert en_dev is not None
        fmt = _FORMATS[target.format]
        dev_outputs = fmt.outputs(model, target.name, en_dev, device, bf16)
        out["temperature"] = fmt.fit(dev_outputs, en_dev)
        for lang, data in eval_sets.items():
            per_lang[lang] = score_split(model, target, data, device, language=lang,
                                         temperature=out["temperature"], bins=cfg.ece_bins,
                                         bf16=bf16)
    en = target.train_language
    sets = {"": per_lang}
    for name, splits in (ood_sets or {}).items():
        sets[f"{name}/"] = {lang: score_split(model, target, data, device, language=lang,
                                              temperature=out["temperature"], bins=cfg.ece_bins,
                                              bf16=bf16)
                            for lang, data in splits.items()}
    for prefix, scored in sets.items():
        for lang, values in scored.items():
            out.update({f"{prefix}{lang}/{k}": v for k, v in values.items()})
        if prefix and not set(scored) - {en}:  # an ood set without a zero-shot language
            continue
        for key in sorted(set.intersection(*(set(m) for m in scored.values()))):
            if calibration.is_reliability_key(key):  # a bin's numbers: per language only
                continue
            out[f"{prefix}zs_{key}"] = macro_mean({lang: m[key] for lang, m in scored.items()},
                                                  exclude=en)
        out[f"{prefix}{ACCURACY_KEY}"] = out[f"{prefix}zs_{METRIC_KEYS[target.metric]}"]
    in_objective = tuple(n for n in (ood_sets or {}) if cfg.ood_in_objective
                         and f"{n}/{ACCURACY_KEY}" in out)
    out[SCORE_KEY] = objective(out, weight=cfg.objective_weight, ece=cfg.objective_ece,
                               sets=in_objective)
    out["eval_seconds"] = time.perf_counter() - t0
    return out


def score_split(model: MultiTaskModel, task: TaskSpec, data: EncodedSplit, device: torch.device,
                *, language: str, temperature: float = 1.0, bins: int = 15,
                bf16: bool | None = None) -> dict[str, float]:
    """The metrics of one split scored with ``task``'s head: its metric, and its
    calibration and reliability bins (``calibration.reliability``) raw and (``*_ts``) at
    ``temperature`` (retrieval targets are scored by ``evaluate``: their calibration is
    fitted across splits or languages); ``bf16``: forward passes under bf16 autocast
    (None: on CUDA only)."""
    bf16 = _bf16(device, bf16)
    if task.format == "retrieval":
        raise ValueError(f"{task.name} is a retrieval target: score it with evaluate(), "
                         "which fits its calibration across its splits and languages")
    fmt = _FORMATS[task.format]
    outputs = fmt.outputs(model, task.name, data, device, bf16)
    raw = fmt.score(outputs, data, 1.0, task, language, bins)
    scaled = fmt.score(outputs, data, temperature, task, language, bins)
    return {**raw, **{f"{k}_ts": v for k, v in scaled.items()
                      if k in fmt.calibration_keys or calibration.is_reliability_key(k)}}


def _bf16(device: torch.device, bf16: bool | None) -> bool:
    """Whether forward passes run under bf16 autocast: as asked, else on CUDA only."""
    return device.type == "cuda" if bf16 is None else bf16


def _forward_precision(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """The context a forward pass runs in: bf16 autocast on ``device``, or full precision."""
    if bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# -- classification and multiple choice ------------------------------------------------------
class _Classes:
    calibration_keys = ("ece", "mce", "brier", "nll")

    @staticmethod
    @torch.no_grad()
    def outputs(model: MultiTaskModel, head: str, data, device: torch.device,
                bf16: bool) -> np.ndarray:
        out = np.zeros((len(data), data.task.num_labels), dtype=np.float64)
        for batch in data.eval_batches(EVAL_BATCH):
            with _forward_precision(device, bf16):
                logits = model(head, batch["input_ids"].to(device),
                               batch["attention_mask"].to(device))
            out[batch["index"].numpy()] = logits.float().cpu().numpy()
        return out

    @staticmethod
    def fit(logits: np.ndarray, data) -> float:
        return calibration.fit_temperature(logits, data.labels)

    @staticmethod
    def score(logits: np.ndarray, data, temperature: float, target: TaskSpec, lang: str,
              bins: int) -> dict[str, float]:
        probs = calibration.softmax(logits, temperature)
        return {**calibration.all_metrics(probs, data.labels, bins),
                **calibration.reliability(probs, np.asarray(data.labels), bins)}


@torch.no_grad()
def _token_logits(model: MultiTaskModel, head: str, data, device: torch.device,
                  bf16: bool) -> list[np.ndarray]:
    """Per sequence, the logits of its real tokens: ``[tokens, 2]`` start/end (span QA),
    ``[tokens, tags]`` (tagging)."""
    out: list[np.ndarray] = [np.empty(0)] * len(data)
    for batch in data.eval_batches(EVAL_BATCH):
        with _forward_precision(device, bf16):
            logits = model(head, batch["input_ids"].to(device),
                           batch["attention_mask"].to(device))
        logits = logits.float().cpu().numpy()
        for row, i in enumerate(batch["index"].tolist()):
            out[i] = logits[row, :len(data.ids[i])].astype(np.float64)
    return out


# -- span QA ---------------------------------------------------------------------------------
class _Spans:
    calibration_keys = ("ece", "mce", "brier")

    outputs = staticmethod(_token_logits)

    @staticmethod
    def fit(logits: list[np.ndarray], data) -> float:
        # start and end positions are two classification problems over each window's tokens
        rows = _padded([x[:, 0] for x in logits] + [x[:, 1] for x in logits])
        labels = np.concatenate([data.start_positions, data.end_positions])
        return calibration.fit_temperature(rows, labels)

    @staticmethod
    def score(logits: list[np.ndarray], data, temperature: float, target: TaskSpec, lang: str,
              bins: int) -> dict[str, float]:
        features: dict[int, list[int]] = defaultdict(list)
        for f, ex in enumerate(data.feature_example.tolist()):
            features[ex].append(f)
        norm_lang = lang if target.name in MLQA_NORMALISED else None
        predictions, confidences, correct = {}, [], []
        for ex, feats in features.items():
            rows = _padded([logits[f] for f in feats]) / temperature
            span = metrics.best_span(rows[..., 0], rows[..., 1], [data.offsets[f] for f in feats])
            text = data.contexts[ex][span.start:span.end] if span.start >= 0 else ""
            predictions[str(ex)] = text
            confidences.append(span.probability)
            correct.append(int(metrics.exact_match(text, data.answers[ex], norm_lang)))
        golds = {str(ex): data.answers[ex] for ex in features}
        return {**metrics.squad_scores(predictions, golds, norm_lang),
                **metrics.span_calibration(confidences, correct, bins)}


def _padded(rows: list[np.ndarray]) -> np.ndarray:
    """Ragged rows (``[len]`` or ``[len, k]``) padded with ``_PAD_LOGIT`` to one width."""
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width, *rows[0].shape[1:]), _PAD_LOGIT, dtype=np.float64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


# -- tagging ---------------------------------------------------------------------------------
class _Tags:
    calibration_keys = ("ece", "mce", "brier", "nll")

    outputs = staticmethod(_token_logits)

    @staticmethod
    def _scored(logits: list[np.ndarray], data) -> tuple[np.ndarray, np.ndarray]:
        """Logits and tag ids of the scored tokens (each word's first sub-token)."""
        keep = [lab != IGNORE_INDEX for lab in data.labels]
        return (np.concatenate([x[k] for x, k in zip(logits, keep)]),
                np.concatenate([lab[k] for lab, k in zip(data.labels, keep)]))

    @classmethod
    def fit(cls, logits: list[np.ndarray], data) -> float:
        return calibration.fit_temperature(*cls._scored(logits, data))

    @classmethod
    def score(cls, logits: list[np.ndarray], data, temperature: float, target: TaskSpec,
              lang: str, bins: int) -> dict[str, float]:
        names = data.label_names
        pred, gold = [], []
        for x, first, tags in zip(logits, data.first_token, data.word_tags):
            ids = np.where(first >= 0, x.argmax(-1)[np.maximum(first, 0)], 0)
            pred.append([names[i] for i in ids])
            gold.append([names[i] for i in tags])
        rows, labels = cls._scored(logits, data)
        probs = calibration.softmax(rows, temperature)
        cal = calibration.all_metrics(probs, labels, bins)
        return {"accuracy": metrics.pos_accuracy(pred, gold),
                "f1": metrics.entity_f1(pred, gold)["f1"],
                **{k: cal[k] for k in cls.calibration_keys},
                **calibration.reliability(probs, labels, bins)}


# -- retrieval -------------------------------------------------------------------------------
@torch.no_grad()
def _embeddings(model: MultiTaskModel, data, side: str, layer: int, device: torch.device,
                bf16: bool) -> np.ndarray:
    rows = len(data.source_ids if side == "source" else data.target_ids)
    out = np.zeros((rows, model.encoder.config.hidden_size), dtype=np.float64)
    for batch in data.batches(side, EVAL_BATCH):
        with _forward_precision(device, bf16):
            emb = model.embed(batch["input_ids"].to(device), batch["attention_mask"].to(device),
                              layer)
        out[batch["index"].numpy()] = emb.float().cpu().numpy()
    return out


def _score_retrieval(model: MultiTaskModel, target: TaskSpec, eval_sets: Mapping[str, Any],
                     fit_sets: Mapping[str, Any], cfg: TrialConfig, device: torch.device,
                     bf16: bool) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per language: the metric and its calibration (``trainables.metrics``' definitions);
    and what was fitted across languages (Tatoeba's temperature)."""
    def both(data) -> tuple[np.ndarray, np.ndarray]:
        return tuple(_embeddings(model, data, side, cfg.retrieval_layer, device, bf16)
                     for side in ("source", "target"))

    def candidates(data) -> dict[tuple[str, str], float]:
        src, tgt = both(data)
        return metrics.bucc_candidates(src, tgt, data.source_keys, data.target_keys)

    if target.metric == "bucc_f1":
        per_lang = {}
        for lang, data in eval_sets.items():
            dev = fit_sets.get(lang)
            if dev is None:  # no dev split: the threshold is tuned on the split scored
                per_lang[lang] = metrics.bucc_prf(candidates(data), data.gold_keys())
            else:
                per_lang[lang] = metrics.bucc_scores(candidates(dev), set(dev.gold_keys()),
                                                     candidates(data), set(data.gold_keys()),
                                                     cfg.ece_bins)
        return per_lang, {}
    # the hub's source side is the other language: XTREME queries with the English side
    sims = {lang: metrics.tatoeba_similarities(tgt, src)
            for lang, (src, tgt) in ((lang, both(data)) for lang, data in eval_sets.items())}
    temperature = metrics.tatoeba_temperature(list(sims.values()))
    per_lang = {lang: {"accuracy": metrics.top1_accuracy(s),
                       **metrics.tatoeba_calibration(s, temperature, cfg.ece_bins)}
                for lang, s in sims.items()}
    return per_lang, {"temperature": temperature}


_FORMATS: Mapping[str, Any] = {"classification": _Classes, "multiple_choice": _Classes,
                               "span_qa": _Spans, "tagging": _Tags}
