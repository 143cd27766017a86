"""Task metrics for every XTREME / X-STILTs format, as the reference scripts define them.

Every score is a fraction in [0, 1], not the percentages the official scripts
print, so that it sits beside ``calibration.accuracy``. Classification and
multiple choice are scored by ``trainables.calibration``; this module covers:

- span-extraction QA: SQuAD v1.1 ``evaluate-v1.1.py`` (SQuAD, XQuAD and, in
  XTREME, TyDiQA-GoldP) and MLQA ``mlqa_evaluation_v1.py`` (``lang`` given);
  span choice as HF ``examples/pytorch/question-answering/utils_qa.py``;
- token tagging: seqeval's default (conlleval-compatible) entity F1;
- retrieval: XTREME ``third_party/run_retrieval.py`` and ``utils_retrieve.py``
  (Tatoeba nearest neighbour, BUCC ratio-margin mining, LASER style).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from trainables.calibration import (all_metrics, ece, fit_temperature, mce, reliability,
                                    softmax)

# --------------------------------------------------------------------------- span QA

_SQUAD_PUNCT = frozenset(string.punctuation)
MLQA_LANGS = ("en", "es", "de", "ar", "hi", "vi", "zh")
_MLQA_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    # as in the MLQA script: the first branch can never match, so every "ال" goes,
    # word-initial or not
    "ar": re.compile(r"\sال^|ال"),
}


def _mlqa_punct(ch: str) -> bool:
    # MLQA's PUNCT set: every Unicode P* character plus ASCII string.punctuation
    # (which adds symbols such as $ + < = > ^ ` | ~); tested per character
    # instead of materialising a 1.1M-entry set at import
    return ch in _SQUAD_PUNCT or unicodedata.category(ch).startswith("P")


def _mixed_segmentation(text: str) -> list[str]:
    """MLQA's zh tokenisation: each CJK ideograph (U+4E00..U+9FA5) or punctuation
    mark is a token; runs of anything else are split on whitespace."""
    tokens: list[str] = []
    run = ""
    for ch in text:
        if "\u4e00" <= ch <= "\u9fa5" or _mlqa_punct(ch):
            tokens.extend(run.split())
            run = ""
            tokens.append(ch)
        else:
            run += ch
    tokens.extend(run.split())
    return tokens


def squad_normalize(text: str, lang: str | None = None) -> str:
    """Normalise an answer as the official scoring script does.

    ``lang=None``: SQuAD v1.1 ``normalize_answer`` (lower-case, drop ASCII
    punctuation, drop English a/an/the, collapse whitespace); XTREME scores
    XQuAD and TyDiQA-GoldP this way in every language. ``lang`` in
    ``MLQA_LANGS``: MLQA ``normalize_answer(s, lang)``: Unicode punctuation,
    that language's article list, and for zh the mixed segmentation, whose
    tokens are joined by single spaces.
    """
    text = text.lower()
    if lang is None:
        text = "".join(ch for ch in text if ch not in _SQUAD_PUNCT)
        return " ".join(_MLQA_ARTICLES["en"].sub(" ", text).split())
    if lang not in MLQA_LANGS:
        raise ValueError(
            f"lang={lang!r} has no MLQA normaliser; use one of {MLQA_LANGS}, "
            "or lang=None for the SQuAD v1.1 script (XQuAD, TyDiQA-GoldP)"
        )
    text = "".join(ch for ch in text if not _mlqa_punct(ch))
    if lang in _MLQA_ARTICLES:
        text = _MLQA_ARTICLES[lang].sub(" ", text)
    tokens = _mixed_segmentation(text) if lang == "zh" else text.split()
    return " ".join(t for t in tokens if t.strip())


def _gold_list(answers: Sequence[str]) -> Sequence[str]:
    if isinstance(answers, str):
        raise TypeError(f"answers must be a list of gold strings, got the str {answers!r}; "
                        "wrap it: [answer]")
    if not answers:
        raise ValueError("answers is empty; every question needs at least one gold answer")
    return answers


def exact_match(prediction: str, answers: Sequence[str], lang: str | None = None) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0."""
    pred = squad_normalize(prediction, lang)
    return float(any(pred == squad_normalize(a, lang) for a in _gold_list(answers)))


def _token_f1(pred: list[str], gold: list[str]) -> float:
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:  # also when both are empty: the scripts score that 0, not 1
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, answers: Sequence[str], lang: str | None = None) -> float:
    """Bag-of-tokens F1 of the normalised strings, max over gold answers."""
    pred = squad_normalize(prediction, lang).split()
    return max(_token_f1(pred, squad_normalize(a, lang).split()) for a in _gold_list(answers))


def squad_scores(predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]],
                 lang: str | None = None) -> dict[str, float]:
    """Mean exact match and F1 over every gold question, as fractions (the
    scripts report ×100). A question without a prediction scores 0; predictions
    for unknown ids are ignored, as in the official ``evaluate``."""
    if not golds:
        raise ValueError("golds is empty; nothing to score")
    em = f = 0.0
    for qid, answers in golds.items():
        if qid in predictions:
            em += exact_match(predictions[qid], answers, lang)
            f += f1(predictions[qid], answers, lang)
    return {"exact_match": em / len(golds), "f1": f / len(golds)}


class Span(NamedTuple):
    start: int  # token index, or character offset when offsets were given; -1 if none
    end: int  # inclusive token index, or exclusive character offset; -1 if none
    score: float  # start_logit + end_logit
    probability: float  # softmax of score over the n-best candidate spans


def best_span(start_logits: np.ndarray, end_logits: np.ndarray,
              offsets: Sequence | None = None, *, max_answer_length: int = 30,
              n_best: int = 20) -> Span:
    """The best valid answer span, as HF ``utils_qa.postprocess_qa_predictions``
    (SQuAD v1, no null answer) chooses it.

    Logits are ``[seq]`` for one feature or ``[n_features, seq]`` for the
    doc-stride windows of one example. Per feature, the ``n_best`` highest start
    and end positions are paired; a pair is kept if ``start <= end``, its length
    ``end - start + 1 <= max_answer_length``, and (with ``offsets``) both
    positions have an offset that is not None (None marks question and special
    tokens). Candidates from all features are ranked by ``start_logit +
    end_logit``; the top ``n_best`` are softmaxed and the first is returned.
    ``offsets`` is an offset mapping of ``(char_start, char_end)`` or None per
    token (a list of those per feature when logits are 2-D); with it the span
    is returned as character offsets, ``context[start:end]``, without it as
    token indices (end inclusive). With no valid pair HF answers "empty" at
    probability 1; here that is ``Span(-1, -1, 0.0, 1.0)``.
    """
    starts = np.asarray(start_logits, dtype=np.float64)
    ends = np.asarray(end_logits, dtype=np.float64)
    if starts.shape != ends.shape or starts.ndim not in (1, 2):
        raise ValueError(f"start and end logits must share a shape [seq] or [n_features, seq], "
                         f"got {starts.shape} and {ends.shape}")
    if starts.ndim == 1:
        starts, ends = starts[None], ends[None]
        offsets = None if offsets is None else [offsets]
    elif offsets is None and len(starts) > 1:
        raise ValueError("several features need offsets to map their spans onto one context")
    elif offsets is not None and len(offsets) != len(starts):
        raise ValueError(f"got {len(offsets)} offset mappings for {len(starts)} features")

    candidates: list[tuple[float, int, int]] = []
    for f_idx, (s_log, e_log) in enumerate(zip(starts, ends)):
        off = None if offsets is None else offsets[f_idx]
        # reversed ascending sort, as HF's argsort(x)[-1:-n_best-1:-1]
        top_s = np.argsort(s_log, kind="stable")[::-1][:n_best].tolist()
        top_e = np.argsort(e_log, kind="stable")[::-1][:n_best].tolist()
        for s in top_s:
            for e in top_e:
                if off is not None and (s >= len(off) or e >= len(off)
                                        or off[s] is None or off[e] is None):
                    continue
                if e < s or e - s + 1 > max_answer_length:
                    continue
                span = (s, e) if off is None else (int(off[s][0]), int(off[e][1]))
                candidates.append((float(s_log[s] + e_log[e]), *span))
    if not candidates:
        return Span(-1, -1, 0.0, 1.0)
    # a stable sort keeps HF's tie order: by feature, then start rank, then end rank
    candidates = sorted(candidates, key=lambda c: c[0], reverse=True)[:n_best]
    scores = np.array([c[0] for c in candidates])
    probs = np.exp(scores - scores.max())
    score, start, end = candidates[0]
    return Span(start, end, score, float(probs[0] / probs.sum()))


def span_calibration(confidences: Sequence[float], correct: Sequence[int],
                     n_bins: int = 15) -> dict[str, float]:
    """Calibration of span QA: the confidence is the probability of the chosen
    span (``best_span(...).probability``), correct is its exact match (1/0).

    ECE and MCE bin as ``calibration.ece``; Brier is the binary one,
    mean (confidence − correct)²; the reliability bins as ``calibration.reliability``.
    """
    conf = np.asarray(confidences, dtype=np.float64)
    hit = np.asarray(correct)
    if conf.shape != hit.shape or conf.ndim != 1:
        raise ValueError(f"confidences and correct must be 1-D of one length, "
                         f"got {conf.shape} and {hit.shape}")
    if ((conf < 0) | (conf > 1)).any():
        raise ValueError("confidences must be probabilities in [0, 1]")
    if not np.isin(hit, (0, 1)).all():
        raise ValueError("correct must hold only 0/1 (or False/True)")
    # as two-class rows [conf, 0] whose label is 0 when right, calibration.ece
    # sees exactly this confidence and correctness, so the binning is shared
    probs = np.stack([conf, np.zeros_like(conf)], axis=1)
    labels = np.where(hit.astype(bool), 0, 1)
    return {
        "ece": ece(probs, labels, n_bins),
        "mce": mce(probs, labels, n_bins),
        "brier": float(((conf - hit) ** 2).mean()),
        **reliability(probs, labels, n_bins),
    }


# --------------------------------------------------------------------------- tagging


def _check_tag_sequences(pred_tags: Sequence[Sequence[str]],
                         gold_tags: Sequence[Sequence[str]]) -> None:
    if any(isinstance(s, str) for s in (*pred_tags, *gold_tags)):
        raise TypeError("tags must be a list of tag sequences (one per sentence), not a flat list")
    if len(pred_tags) != len(gold_tags):
        raise ValueError(f"{len(pred_tags)} predicted sentences for {len(gold_tags)} gold ones")
    for i, (p, g) in enumerate(zip(pred_tags, gold_tags)):
        if len(p) != len(g):
            raise ValueError(f"sentence {i}: {len(p)} predicted tags for {len(g)} gold tags")


def pos_accuracy(pred_tags: Sequence[Sequence[str]], gold_tags: Sequence[Sequence[str]]) -> float:
    """Fraction of tokens whose tag is right, over all sentences.

    XTREME's leaderboard ``evaluate.py`` scores udpos with seqeval F1 instead;
    ``entity_f1`` on UPOS tags reproduces that number.
    """
    _check_tag_sequences(pred_tags, gold_tags)
    total = sum(len(g) for g in gold_tags)
    if total == 0:
        raise ValueError("no tokens to score")
    return sum(p == g for ps, gs in zip(pred_tags, gold_tags) for p, g in zip(ps, gs)) / total


def _chunk_end(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (prev_tag in ("E", "S")
            or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
            or (prev_tag not in ("O", ".") and prev_type != type_))


def _chunk_start(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (tag in ("B", "S")
            or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
            or (tag not in ("O", ".") and prev_type != type_))


def _entities(sentences: Sequence[Sequence[str]]) -> set[tuple[str, int, int]]:
    """(type, start, end) chunks, as seqeval's ``get_entities``: the tag is the
    first character, the type what follows its first "-" ("_" if nothing).

    Sentences are joined with an "O" after each and positions are global, as
    seqeval does: an untyped tag such as UPOS "X" has O's type "_", opens no
    chunk, and so can close one begun earlier, even in an earlier sentence.
    """
    chunks: set[tuple[str, int, int]] = set()
    prev_tag, prev_type, begin = "O", "", 0
    for i, chunk in enumerate([t for tags in sentences for t in (*tags, "O")] + ["O"]):
        tag, type_ = chunk[0], chunk[1:].split("-", maxsplit=1)[-1] or "_"
        if _chunk_end(prev_tag, tag, prev_type, type_):
            chunks.add((prev_type, begin, i - 1))
        if _chunk_start(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def entity_f1(pred_tags: Sequence[Sequence[str]],
              gold_tags: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level micro precision, recall and F1 (PAN-X / WikiANN NER).

    Exactly seqeval's default mode (``seqeval.metrics.f1_score`` without
    ``mode="strict"``, conlleval-compatible): an entity counts only if type,
    start and end all match, so a partial overlap is one false positive plus one
    false negative; an I- tag after O (or at sentence start) opens an entity; a
    type change (B-PER I-LOC) closes one and opens another. P, R and F1 are 0
    where their denominator is.
    """
    _check_tag_sequences(pred_tags, gold_tags)
    pred, gold = _entities(pred_tags), _entities(gold_tags)
    hit = len(pred & gold)
    p = hit / len(pred) if pred else 0.0
    r = hit / len(gold) if gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


# --------------------------------------------------------------------------- retrieval
def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be [n, d], got shape {x.shape}")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def tatoeba_accuracy(src_emb: np.ndarray, tgt_emb: np.ndarray) -> float:
    """Fraction of rows i of ``src_emb`` whose cosine nearest neighbour in
    ``tgt_emb`` is row i (first index on ties).

    XTREME's ``similarity_search(x, y)`` indexes the xx sentences and queries
    with the English ones, so its number is ``tatoeba_accuracy(eng, xx)``.
    """
    return top1_accuracy(tatoeba_similarities(src_emb, tgt_emb))


def top1_accuracy(similarities: np.ndarray) -> float:
    """Fraction of queries (rows) whose most similar candidate is their own row."""
    return float((np.argmax(similarities, axis=1) == np.arange(len(similarities))).mean())


def margin_candidates(src_emb: np.ndarray, tgt_emb: np.ndarray,
                      k: int = 4) -> dict[tuple[int, int], float]:
    """Bitext candidates ``(src_row, tgt_row) -> ratio margin``, as XTREME's
    ``mine_bitext`` defaults (mode="mine", retrieval="max", margin="ratio",
    neighborhood=4, cosine).

    margin(x, y) = cos(x, y) / (Σ_{z∈NN_k(x)} cos(x, z)/2k + Σ_{z∈NN_k(y)} cos(y, z)/2k),
    k capped at the other side's size. Each source proposes its best-margin
    target among its k nearest, each target its best source among its k
    nearest; proposals are taken by descending margin, skipping any whose source
    or target is already used, and kept if the margin is > 0.
    """
    x, y = _unit(src_emb), _unit(tgt_emb)
    sim = x @ y.T

    def knn(s: np.ndarray, k_: int) -> np.ndarray:
        return np.argsort(-s, axis=1, kind="stable")[:, :k_]

    fwd_ind, bwd_ind = knn(sim, min(k, len(y))), knn(sim.T, min(k, len(x)))
    fwd_mean = np.take_along_axis(sim, fwd_ind, axis=1).mean(axis=1)
    bwd_mean = np.take_along_axis(sim.T, bwd_ind, axis=1).mean(axis=1)
    margin = sim / ((fwd_mean[:, None] + bwd_mean[None, :]) / 2)

    fwd_m = np.take_along_axis(margin, fwd_ind, axis=1)
    bwd_m = np.take_along_axis(margin.T, bwd_ind, axis=1)
    fwd_best = fwd_ind[np.arange(len(x)), fwd_m.argmax(axis=1)]
    bwd_best = bwd_ind[np.arange(len(y)), bwd_m.argmax(axis=1)]
    pairs = [(i, int(j)) for i, j in enumerate(fwd_best)]
    pairs += [(int(i), j) for j, i in enumerate(bwd_best)]
    scores = np.concatenate([fwd_m.max(axis=1), bwd_m.max(axis=1)])

    out: dict[tuple[int, int], float] = {}
    seen_src: set[int] = set()
    seen_tgt: set[int] = set()
    for n in np.argsort(-scores, kind="stable"):
        i, j = pairs[n]
        if i not in seen_src and j not in seen_tgt:
            seen_src.add(i)
            seen_tgt.add(j)
            if scores[n] > 0:
                out[(i, j)] = float(scores[n])
    return out


def _prf(extracted: set, gold: set) -> tuple[float, float, float]:
    hit = len(extracted & gold)
    if hit == 0:
        return 0.0, 0.0, 0.0
    p, r = hit / len(extracted), hit / len(gold)
    return p, r, 2 * p * r / (p + r)


def bucc_candidates(src_emb: np.ndarray, tgt_emb: np.ndarray, src_ids: Sequence[str],
                    tgt_ids: Sequence[str], *, k: int = 4) -> dict[tuple[str, str], float]:
    """``margin_candidates`` keyed by sentence ids: ``(src_id, tgt_id) -> ratio margin``."""
    if len(src_ids) != len(src_emb) or len(tgt_ids) != len(tgt_emb):
        raise ValueError(f"ids and embeddings differ in length: {len(src_ids)} src ids for "
                         f"{len(src_emb)} rows, {len(tgt_ids)} tgt ids for {len(tgt_emb)} rows")
    mined = margin_candidates(src_emb, tgt_emb, k)
    return {(src_ids[i], tgt_ids[j]): s for (i, j), s in mined.items()}


def bucc_prf(cands: Mapping[tuple[str, str], float],
             gold_pairs: set[tuple[str, str]] | Sequence[tuple[str, str]],
             threshold: float | None = None) -> dict[str, float]:
    """BUCC P/R/F1 of the candidates with margin >= ``threshold``. With
    ``threshold=None`` it is tuned on ``gold_pairs`` as XTREME's ``bucc_optimize`` does:
    walk candidates by descending margin, and where the prefix F1 is best so far put the
    threshold halfway to the next margin (at the last margin itself when the whole list
    is best, where XTREME would index past its end)."""
    gold = {tuple(p) for p in gold_pairs}
    if not gold:
        raise ValueError("gold_pairs is empty")
    if threshold is None:
        ranked = sorted(cands.items(), key=lambda c: -c[1])
        threshold, best, hit = 0.0, 0.0, 0
        for n, (pair, score) in enumerate(ranked):
            hit += pair in gold
            if hit:
                p, r = hit / (n + 1), hit / len(gold)
                if 2 * p * r / (p + r) > best:
                    best = 2 * p * r / (p + r)
                    threshold = (score + ranked[n + 1][1]) / 2 if n + 1 < len(ranked) else score
    p, r, f = _prf({pair for pair, s in cands.items() if s >= threshold}, gold)
    return {"precision": p, "recall": r, "f1": f, "threshold": float(threshold)}


def bucc_f1(src_emb: np.ndarray, tgt_emb: np.ndarray, src_ids: Sequence[str],
            tgt_ids: Sequence[str], gold_pairs: set[tuple[str, str]] | Sequence[tuple[str, str]],
            threshold: float | None = None, *, k: int = 4) -> dict[str, float]:
    """BUCC 2018 bitext mining P/R/F1, as XTREME's ``bucc_eval``: ``bucc_prf`` of the
    ``bucc_candidates``, the threshold tuned on ``gold_pairs`` unless given (a trial tunes
    it on dev and applies it to test: ``bucc_scores``). Sentence texts are not
    de-duplicated here, as ``text_load_unify`` / ``read_sent2id`` do: pass unique
    sentences."""
    return bucc_prf(bucc_candidates(src_emb, tgt_emb, src_ids, tgt_ids, k=k), gold_pairs,
                    threshold)


# -- retrieval calibration ---------------------------------------------------------------------
# Retrieval has no class probabilities of its own; these define them, once:
# - Tatoeba: each English query's candidates are every sentence of the other side; p =
#   softmax(cosine / T) over them, with one temperature T per trial fitted by NLL on
#   held-out pairs (every TATOEBA_HOLDOUT-th pair of each scored language, pooled: Tatoeba
#   publishes no dev set); confidence = the top-1 match's p, correct = it is the aligned
#   sentence. ECE, MCE, Brier (over all candidates), NLL and reliability bins on the other
#   pairs; accuracy stays XTREME's, on every pair.
# - BUCC: each mined candidate pair is an event "this pair is gold"; p = sigmoid(a·margin +
#   b), Platt scaling fitted on the dev split's candidates (with Platt's target smoothing)
#   and applied to test's, where the F1 threshold tuned on dev is applied too. Calibration
#   of the two-class probabilities (1 − p, p) as for a binary classifier.

#: every TATOEBA_HOLDOUT-th pair of a language (rows 0, 5, 10, ...) fits the temperature
TATOEBA_HOLDOUT = 5
#: the temperature range searched for cosine similarities (in [-1, 1], so T is small)
RETRIEVAL_T_RANGE = (1e-4, 10.0)


def tatoeba_similarities(src_emb: np.ndarray, tgt_emb: np.ndarray) -> np.ndarray:
    """Cosine similarities [queries, candidates] of aligned rows (row i <-> row i)."""
    src, tgt = _unit(src_emb), _unit(tgt_emb)
    if src.shape != tgt.shape:
        raise ValueError(f"Tatoeba pairs row i with row i: shapes {src.shape} and "
                         f"{tgt.shape} differ")
    return src @ tgt.T


def tatoeba_heldout(n: int) -> np.ndarray:
    """Which of ``n`` pairs fit the temperature (a boolean mask)."""
    return np.arange(n) % TATOEBA_HOLDOUT == 0


def tatoeba_temperature(similarities: Sequence[np.ndarray]) -> float:
    """One temperature for all languages' ``tatoeba_similarities``: NLL of the aligned
    candidate over their held-out pairs, pooled."""
    held = [s[tatoeba_heldout(len(s))] for s in similarities]
    labels = [np.flatnonzero(tatoeba_heldout(len(s))) for s in similarities]
    return fit_temperature(held, labels, low=RETRIEVAL_T_RANGE[0], high=RETRIEVAL_T_RANGE[1])


def tatoeba_calibration(similarities: np.ndarray, temperature: float,
                        n_bins: int = 15) -> dict[str, float]:
    """ECE, MCE, Brier, NLL and reliability bins of the pairs that did not fit the
    temperature (see the definitions above)."""
    rows = np.flatnonzero(~tatoeba_heldout(len(similarities)))
    if not len(rows):
        return {}
    probs = softmax(similarities[rows], temperature)
    out = all_metrics(probs, rows, n_bins)
    out.pop("accuracy")  # the metric is XTREME's, over every pair
    return {**out, **reliability(probs, rows, n_bins)}


def platt_fit(scores: np.ndarray, labels: np.ndarray, *, iters: int = 50) -> tuple[float, float]:
    """Platt scaling: (a, b) of p = sigmoid(a·score + b) minimising the NLL of ``labels``
    (0/1) with Platt's smoothed targets ((N+ + 1)/(N+ + 2) and 1/(N- + 2)), by Newton's
    method on the two parameters (a small ridge keeps it defined on separable data)."""
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if not len(x):
        raise ValueError("platt_fit needs at least one scored candidate")
    pos, neg = y.sum(), len(y) - y.sum()
    t = np.where(y > 0, (pos + 1) / (pos + 2), 1 / (neg + 2))
    a, b = 0.0, float(np.log((pos + 1) / (neg + 1)))
    features = np.stack([x, np.ones_like(x)], axis=1)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(a * x + b)))
        grad = features.T @ (p - t) + 1e-6 * np.array([a, b])
        w = p * (1 - p)
        hess = (features * w[:, None]).T @ features + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)


def bucc_scores(dev: Mapping[tuple[str, str], float], dev_gold: set[tuple[str, str]],
                test: Mapping[tuple[str, str], float], test_gold: set[tuple[str, str]],
                n_bins: int = 15) -> dict[str, float]:
    """A BUCC language's numbers: P/R/F1 on ``test`` at the threshold tuned on ``dev``,
    and the calibration of test's candidates under Platt scaling fitted on dev's (see the
    definitions above). ``dev`` and ``test``: ``bucc_candidates``."""
    out = bucc_prf(test, test_gold, bucc_prf(dev, dev_gold)["threshold"])
    if not test or not dev:
        return out
    y_dev = np.array([pair in dev_gold for pair in dev], dtype=np.float64)
    a, b = platt_fit(np.array(list(dev.values())), y_dev)
    p = 1 / (1 + np.exp(-(a * np.array(list(test.values())) + b)))
    probs = np.stack([1 - p, p], axis=1)
    labels = np.array([pair in test_gold for pair in test], dtype=int)
    cal = all_metrics(probs, labels, n_bins)
    cal.pop("accuracy")
    return {**out, **cal, **reliability(probs, labels, n_bins), "platt_a": a, "platt_b": b}
