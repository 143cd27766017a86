import math

import numpy as np
import pytest

from trainables import metrics as m

# --------------------------------------------------------------------------- span QA


def test_squad_normalisation_drops_case_punctuation_articles_and_spaces():
    # "The  Cat!" -> "the  cat!" -> "the  cat" -> "   cat" -> "cat"
    assert m.squad_normalize("The  Cat!") == "cat"
    assert m.exact_match("The  Cat!", ["cat"]) == 1.0
    assert m.exact_match("The Cat", ["dog", "a cat."]) == 1.0
    assert m.exact_match("cats", ["cat"]) == 0.0


def test_f1_partial_overlap_is_max_over_gold_answers():
    # pred tokens [big, red, dog]; gold 1 [red, dog, barked]: 2 common, P = R = 2/3 -> F1 2/3
    assert m.f1("the big red dog", ["a red dog barked"]) == pytest.approx(2 / 3)
    # gold 2 [big, dog]: 2 common, P = 2/3, R = 1 -> F1 = 2·(2/3)/(5/3) = 4/5; max wins
    assert m.f1("the big red dog", ["a red dog barked", "big dog"]) == pytest.approx(0.8)
    # tokens are a multiset: [dog, dog] vs [dog] share 1, P = 1/2, R = 1 -> 2/3
    assert m.f1("dog dog", ["dog"]) == pytest.approx(2 / 3)
    assert m.f1("cat", ["dog"]) == 0.0


def test_answers_that_normalise_to_nothing_match_exactly_but_score_f1_zero():
    # "the" and "a" both normalise to "": the scripts give EM 1 but F1 0 (num_same == 0)
    assert m.exact_match("the", ["a"]) == 1.0
    assert m.f1("the", ["a"]) == 0.0


def test_mlqa_german_article_removal_differs_from_squad():
    # MLQA de: "der hund" -> " hund" -> "hund"
    assert m.squad_normalize("Der Hund", "de") == "hund"
    assert m.exact_match("Der Hund", ["Hund"], "de") == 1.0
    # the SQuAD script keeps "der": [der, hund] vs [hund] -> EM 0, F1 = 2·(1/2)·1/(3/2) = 2/3
    assert m.exact_match("Der Hund", ["Hund"]) == 0.0
    assert m.f1("Der Hund", ["Hund"]) == pytest.approx(2 / 3)
    # but German "the" is a word, not an article
    assert m.squad_normalize("The Hund", "de") == "the hund"


def test_mlqa_other_languages_articles_and_unicode_punctuation():
    assert m.squad_normalize("Los Gatos", "es") == "gatos"
    assert m.squad_normalize("cái bàn", "vi") == "bàn"
    # Arabic: every "ال" goes, wherever it is: "الكتاب" -> " كتاب"
    assert m.squad_normalize("الكتاب", "ar") == "كتاب"
    assert m.squad_normalize("بالبيت", "ar") == "ب بيت"  # mid-word too: "ب" + " " + "بيت"
    # Hindi keeps words, drops the danda (category Po)
    assert m.squad_normalize("भारत।", "hi") == "भारत"
    # « » are Unicode punctuation but not ASCII string.punctuation
    assert m.exact_match("«Paris»", ["paris"], "en") == 1.0
    assert m.exact_match("«Paris»", ["paris"]) == 0.0
    with pytest.raises(ValueError, match="MLQA"):
        m.squad_normalize("x", "fr")


def test_mlqa_chinese_mixed_segmentation_f1():
    # "2008年北京奥运会" -> [2008, 年, 北, 京, 奥, 运, 会]: digits stay one token
    assert m.squad_normalize("2008年北京奥运会", "zh") == "2008 年 北 京 奥 运 会"
    # gold "2008年" -> [2008, 年]: 2 common, P = 2/7, R = 1 -> F1 = (4/7)/(9/7) = 4/9
    assert m.f1("2008年北京奥运会", ["2008年"], "zh") == pytest.approx(4 / 9)
    # Latin runs split on whitespace; "，" is punctuation and removed first
    assert m.squad_normalize("iPhone手机，新款", "zh") == "iphone 手 机 新 款"
    # the SQuAD script sees one token and no overlap
    assert m.f1("2008年北京奥运会", ["2008年"]) == 0.0


def test_squad_scores_are_fractions_and_missing_answers_score_zero():
    golds = {"q1": ["The Cat"], "q2": ["red dog barked"], "q3": ["x"]}
    preds = {"q1": "cat", "q2": "big red dog", "extra": "ignored"}
    # q1: EM 1, F1 1; q2: [big, red, dog] vs [red, dog, barked] -> F1 2/3; q3 missing -> 0
    scores = m.squad_scores(preds, golds)
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((1 + 2 / 3) / 3)


def test_answers_must_be_a_list():
    with pytest.raises(TypeError, match="wrap it"):
        m.exact_match("cat", "cat")


def test_best_span_skips_an_invalid_maximum():
    start = np.array([0.0, 1.0, 0.0, 4.0, 0.0])
    end = np.array([0.0, 3.0, 0.0, 0.0, 2.0])
    # the raw maxima, start 3 (4.0) and end 1 (3.0), give end < start.
    # n_best=2: starts [3, 1], ends [1, 4] -> valid pairs (3,4)=6, (1,1)=4, (1,4)=3;
    # the top 2 are softmaxed: p = e^6/(e^6 + e^4) = 1/(1 + e^-2)
    span = m.best_span(start, end, n_best=2)
    assert (span.start, span.end) == (3, 4)
    assert span.score == pytest.approx(6.0)
    assert span.probability == pytest.approx(1 / (1 + math.exp(-2)))
    # with every pair in play (n_best=20) there are 15 valid spans; (3,4) still wins
    assert m.best_span(start, end)[:3] == (3, 4, 6.0)


def test_best_span_respects_max_answer_length():
    start = np.array([0.0, 1.0, 0.0, 4.0, 0.0])
    end = np.array([0.0, 3.0, 0.0, 0.0, 2.0])
    # length 1 only, n_best=2: (3,4) and (1,4) too long, (3,1) reversed -> (1,1) alone, p = 1
    assert m.best_span(start, end, max_answer_length=1, n_best=2) == (1, 1, 4.0, 1.0)


def test_best_span_with_offsets_returns_characters_and_skips_question_tokens():
    # token 0 is the question (offset None) and has the largest logits
    start = np.array([9.0, 0.0, 2.0, 0.0])
    end = np.array([9.0, 0.0, 0.0, 1.0])
    offsets = [None, (0, 5), (6, 9), (10, 14)]
    span = m.best_span(start, end, offsets)
    # best pair (2,3) = 3, chars offsets[2][0]..offsets[3][1]
    assert (span.start, span.end, span.score) == (6, 14, 3.0)
    # valid pairs (token 0 excluded): (1,1)=0 (1,2)=0 (1,3)=1 (2,2)=2 (2,3)=3 (3,3)=1
    z = math.exp(3) + math.exp(2) + 2 * math.exp(1) + 2 * math.exp(0)
    assert span.probability == pytest.approx(math.exp(3) / z)


def test_best_span_ranks_across_features_and_handles_no_valid_span():
    # two doc-stride windows; the second holds the better span
    start = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    end = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    offsets = [[None, (0, 4), (5, 8)], [None, (5, 8), (9, 12)]]
    span = m.best_span(start, end, offsets, n_best=2)
    # window 0, starts/ends [1, 2]: (1,1)=2, (1,2)=1, (2,2)=0; window 1, [2, 1]: (2,2)=6,
    # (1,2)=1, (1,1)=0. Pooled top 2 are 6 and 2: p = e^6/(e^6 + e^2)
    assert (span.start, span.end, span.score) == (9, 12, 6.0)
    assert span.probability == pytest.approx(1 / (1 + math.exp(-4)))
    assert m.best_span(np.zeros(2), np.zeros(2), [None, None]) == (-1, -1, 0.0, 1.0)


def test_span_calibration_hand_computed():
    # 10 bins; 0.95 and 0.92 share (0.9, 1]: acc 1/2, conf 0.935 -> 0.435, weight 1/2;
    # 0.35 wrong -> 0.35, weight 1/4; 0.65 right -> 0.35, weight 1/4
    out = m.span_calibration([0.95, 0.92, 0.35, 0.65], [1, 0, 0, 1], n_bins=10)
    assert out["ece"] == pytest.approx(0.5 * 0.435 + 0.25 * 0.35 + 0.25 * 0.35)
    assert out["mce"] == pytest.approx(0.435)
    # (0.05² + 0.92² + 0.35² + 0.35²)/4
    assert out["brier"] == pytest.approx((0.0025 + 0.8464 + 0.1225 + 0.1225) / 4)


def test_span_calibration_rejects_non_probabilities():
    with pytest.raises(ValueError, match="probabilities"):
        m.span_calibration([1.5], [1])
    with pytest.raises(ValueError, match="0/1"):
        m.span_calibration([0.5], [2])


# --------------------------------------------------------------------------- tagging


def test_pos_accuracy():
    gold = [["NOUN", "VERB", "DET"], ["ADJ", "NOUN"]]
    pred = [["NOUN", "NOUN", "DET"], ["ADJ", "NOUN"]]
    assert m.pos_accuracy(pred, gold) == pytest.approx(4 / 5)
    with pytest.raises(ValueError, match="sentence 0"):
        m.pos_accuracy([["NOUN"], ["ADJ"]], gold)


def test_entity_f1_overlap_type_mismatch_and_i_start():
    gold = [
        ["B-PER", "I-PER", "O", "B-LOC", "O"],
        ["O", "B-ORG", "I-ORG", "I-ORG", "O"],
        ["B-MISC", "I-MISC", "O"],
        ["B-PER", "O"],
    ]
    pred = [
        ["B-PER", "I-PER", "O", "B-ORG", "O"],  # PER right; ORG(3,3) vs LOC(3,3): wrong type
        ["O", "B-ORG", "I-ORG", "O", "O"],  # ORG(1,2) overlaps gold ORG(1,3): wrong
        ["I-MISC", "I-MISC", "O"],  # I- after sentence start opens MISC(0,1): right
        ["B-PER", "I-LOC"],  # type change: PER(0,0) right, LOC(1,1) extra
    ]
    # gold 5 entities, predicted 6, right 3: P = 1/2, R = 3/5, F1 = 0.6/1.1 = 6/11
    out = m.entity_f1(pred, gold)
    assert out["precision"] == pytest.approx(0.5)
    assert out["recall"] == pytest.approx(0.6)
    assert out["f1"] == pytest.approx(6 / 11)


def test_entity_f1_entities_stop_at_sentence_ends_and_empty_is_zero():
    # an I-PER opening sentence 2 does not continue sentence 1's PER
    assert m.entity_f1([["B-PER"], ["I-PER"]], [["B-PER"], ["B-PER"]])["f1"] == 1.0
    assert m.entity_f1([["O", "O"]], [["O", "B-LOC"]]) == {"precision": 0.0, "recall": 0.0,
                                                          "f1": 0.0}
    # I-PER after B-LOC: type change opens PER; I-PER B-PER: B closes and opens
    assert m.entity_f1([["B-LOC", "I-PER", "B-PER"]],
                       [["B-LOC", "B-PER", "B-PER"]])["f1"] == 1.0
    # IOBES: E- closes, so a following I-PER opens PER(1,1); B-PER I-PER is PER(0,1)
    assert m.entity_f1([["B-PER", "I-PER"]], [["E-PER", "I-PER"]])["f1"] == 0.0
    # untyped IOB: "I" after "O" opens a chunk by the O->I rule alone (no type change)
    assert m.entity_f1([["O", "I"]], [["O", "B"]])["f1"] == 1.0


def test_entity_f1_on_pos_tags_reproduces_xtreme_udpos_quirk():
    # seqeval chunks untagged labels by first letter and the rest: NOUN NOUN -> one "OUN" chunk
    gold = [["NOUN", "NOUN", "VERB"]]
    pred = [["NOUN", "ADJ", "VERB"]]
    # gold chunks OUN(0,1), ERB(2,2); pred OUN(0,0), DJ(1,1), ERB(2,2): 1 right
    # P = 1/3, R = 1/2, F1 = (1/3)/(5/6) = 2/5, while accuracy is 2/3
    assert m.entity_f1(pred, gold)["f1"] == pytest.approx(0.4)
    assert m.pos_accuracy(pred, gold) == pytest.approx(2 / 3)


def test_entity_f1_keeps_seqevals_phantom_chunk_for_untyped_tags():
    # seqeval joins sentences with "O": B-PER(0) O(1) O(2) X(3) B-ORG(4) O(5).
    # "X" has O's type "_", so it opens nothing; B-ORG's type change then closes a
    # chunk ("_", 0, 3) begun at the stale offset 0. Pred {PER, _, ORG}, gold {PER, ORG}
    out = m.entity_f1([["B-PER", "O"], ["X", "B-ORG"]], [["B-PER", "O"], ["O", "B-ORG"]])
    assert out["precision"] == pytest.approx(2 / 3)
    assert out["recall"] == 1.0
    assert out["f1"] == pytest.approx(0.8)


# --------------------------------------------------------------------------- retrieval


def _at(degrees, norms=None):
    rad = np.deg2rad(degrees)
    v = np.stack([np.cos(rad), np.sin(rad)], axis=1)
    return v if norms is None else v * np.asarray(norms)[:, None]


def test_tatoeba_accuracy_by_angles():
    # unit-circle angles, so cosine order = angular distance; norms must not matter
    src = _at([0, 90, 45, -45])
    tgt = _at([10, 80, 30, 170], norms=[2.0, 0.5, 3.0, 1.0])
    # s0 -> t0 (10°), s1 -> t1 (10°), s2 -> t2 (15°), s3 (-45°) -> t0 (55°) not t3 (145°)
    assert m.tatoeba_accuracy(src, tgt) == pytest.approx(3 / 4)
    assert m.tatoeba_accuracy(src, src * 7.0) == 1.0


def _bucc_set():
    # targets e0, e1, e3, e2; sources e0, e1, e3 and (e2 + e3)/√2, which is equally
    # close (cos a = 1/√2) to t2 = e3 and t3 = e2
    e = np.eye(4)
    tgt = np.stack([e[0], e[1], e[3], e[2]])
    src = np.stack([e[0], e[1], e[3], e[2] + e[3]])
    return src, tgt


A = 1 / math.sqrt(2)
# k = 4 covers all 4 rows. cos rows s: s0 [1,0,0,0] s1 [0,1,0,0] s2 [0,0,1,0] s3 [0,0,a,a]
# source means: 1/4, 1/4, 1/4, a/2; target means: 1/4, 1/4, (1+a)/4, a/4
# (0,0) = (1,1) = 1/((1/4+1/4)/2) = 4;  (2,2) = 1/((1/4+(1+a)/4)/2) = 8/(a+2)
# (3,2) = a/((a/2+(1+a)/4)/2) = 8a/(3a+1);  (3,3) = a/((a/2+a/4)/2) = 8/3
M22, M32, M33 = 8 / (A + 2), 8 * A / (3 * A + 1), 8 / 3


def test_margin_candidates_hand_computed():
    src, tgt = _bucc_set()
    cands = m.margin_candidates(src, tgt)
    # s3 ties t2 and t3 in cosine; the margin picks t3 (8/3 > 8a/(3a+1) ≈ 1.81)
    assert set(cands) == {(0, 0), (1, 1), (2, 2), (3, 3)}
    assert cands[(0, 0)] == pytest.approx(4.0)
    assert cands[(2, 2)] == pytest.approx(M22)
    assert cands[(3, 3)] == pytest.approx(M33)
    assert M32 < M33


def test_bucc_threshold_tuned_between_margins():
    src, tgt = _bucc_set()
    ids_s, ids_t = ["s0", "s1", "s2", "s3"], ["t0", "t1", "t2", "t3"]
    gold = {("s0", "t0"), ("s1", "t1"), ("s2", "t2")}  # s3/t3 are not parallel
    # ranked margins 4, 4, 8/(a+2) ≈ 2.955, 8/3: F1 peaks at 1 after the third
    out = m.bucc_f1(src, tgt, ids_s, ids_t, gold)
    assert out["threshold"] == pytest.approx((M22 + M33) / 2)
    assert (out["precision"], out["recall"], out["f1"]) == (1.0, 1.0, 1.0)
    # a fixed threshold of 3 keeps the two margins of 4: P = 1, R = 2/3, F1 = 0.8
    fixed = m.bucc_f1(src, tgt, ids_s, ids_t, gold, threshold=3.0)
    assert fixed["precision"] == 1.0
    assert fixed["recall"] == pytest.approx(2 / 3)
    assert fixed["f1"] == pytest.approx(0.8)


def test_bucc_threshold_at_the_last_candidate():
    src, tgt = _bucc_set()
    gold = {("s0", "t0"), ("s1", "t1"), ("s3", "t3")}  # the 2.955 pair is the wrong one
    # prefix F1: 1/2, 4/5, 2/3, then 6/7 (P 3/4, R 1) on the last: threshold = its margin
    out = m.bucc_f1(src, tgt, ["s0", "s1", "s2", "s3"], ["t0", "t1", "t2", "t3"], gold)
    assert out["threshold"] == pytest.approx(M33)
    assert out["precision"] == pytest.approx(3 / 4)
    assert out["recall"] == 1.0
    assert out["f1"] == pytest.approx(6 / 7)


# -- retrieval calibration (trainables.metrics' definitions) ---------------------------------
def test_bucc_threshold_is_tuned_on_dev_and_applied_to_test():
    from trainables.metrics import bucc_prf, bucc_scores

    dev = {("a", "x"): 0.9, ("b", "y"): 0.8, ("c", "z"): 0.7}
    dev_gold = {("a", "x"), ("b", "y")}  # best F1 on dev between 0.8 and 0.7: 0.75
    test = {("d", "u"): 0.9, ("e", "v"): 0.72, ("f", "w"): 0.6}
    test_gold = {("d", "u"), ("e", "v")}
    tuned_on_test = bucc_prf(test, test_gold)
    assert tuned_on_test["threshold"] == pytest.approx(0.66) and tuned_on_test["f1"] == 1.0
    out = bucc_scores(dev, dev_gold, test, test_gold)
    assert out["threshold"] == pytest.approx(0.75)  # dev's, not test's 0.66
    assert (out["precision"], out["recall"]) == (1.0, 0.5) and out["f1"] == pytest.approx(2 / 3)


def test_bucc_calibration_is_platt_scaling_fitted_on_dev():
    from trainables.metrics import bucc_scores, platt_fit

    rng = np.random.default_rng(0)
    margins = rng.uniform(0.9, 1.3, 200)
    labels = (rng.random(200) < 1 / (1 + np.exp(-(12 * (margins - 1.1))))).astype(float)
    a, b = platt_fit(margins, labels)
    # the same fit by brute force: smoothed targets, NLL over a grid of (a, b)
    pos, neg = labels.sum(), len(labels) - labels.sum()
    t = np.where(labels > 0, (pos + 1) / (pos + 2), 1 / (neg + 2))
    grid_a, grid_b = np.meshgrid(np.linspace(0, 30, 301), np.linspace(-35, 0, 351))
    z = grid_a[..., None] * margins + grid_b[..., None]
    nll = (np.logaddexp(0, -z) * t + np.logaddexp(0, z) * (1 - t)).sum(axis=-1)
    z_fit = a * margins + b
    fitted = (np.logaddexp(0, -z_fit) * t + np.logaddexp(0, z_fit) * (1 - t)).sum()
    assert fitted <= nll.min() + 1e-6  # no point of the grid does better
    assert fitted >= nll.min() - 0.05  # and the grid comes close: the same minimum
    assert a > 0  # a larger margin: more likely a gold pair
    # test: two candidates; p = sigmoid(a * margin + b) of each, by hand
    dev = {(f"s{k}", f"t{k}"): float(m) for k, m in enumerate(margins)}
    dev_gold = {(f"s{k}", f"t{k}") for k in np.flatnonzero(labels)}
    test = {("x", "y"): 1.25, ("u", "v"): 0.95}
    out = bucc_scores(dev, dev_gold, test, {("x", "y")}, n_bins=10)
    p = 1 / (1 + np.exp(-(np.array([out["platt_a"] * 1.25, out["platt_a"] * 0.95])
                          + out["platt_b"])))
    conf = np.maximum(p, 1 - p)
    correct = np.array([p[0] >= 0.5, p[1] < 0.5], dtype=float)  # gold, not gold
    assert out["brier"] == pytest.approx(np.mean(2 * (p - [1, 0]) ** 2))
    bins = np.ceil(conf * 10)
    expected = sum(abs(correct[bins == k].mean() - conf[bins == k].mean()) * (bins == k).mean()
                   for k in set(bins))
    assert out["ece"] == pytest.approx(expected)


def test_tatoeba_calibration_fits_one_temperature_on_held_out_pairs():
    from trainables.calibration import softmax
    from trainables.metrics import (TATOEBA_HOLDOUT, tatoeba_calibration, tatoeba_heldout,
                                    tatoeba_temperature)

    rng = np.random.default_rng(1)
    sims = [np.clip(np.eye(n) * 0.12 + rng.normal(0.5, 0.1, (n, n)), -1, 1) for n in (40, 31)]
    assert list(np.flatnonzero(tatoeba_heldout(40))) == list(range(0, 40, TATOEBA_HOLDOUT))
    t = tatoeba_temperature(sims)
    # by brute force: the pooled NLL of the aligned candidate over the held-out rows
    grid = np.exp(np.linspace(np.log(1e-3), np.log(10), 4001))
    held = [(s[tatoeba_heldout(len(s))], np.flatnonzero(tatoeba_heldout(len(s)))) for s in sims]
    nll = [sum(-np.log(softmax(h, g)[np.arange(len(y)), y]).sum() for h, y in held)
           for g in grid]
    assert t == pytest.approx(grid[int(np.argmin(nll))], rel=0.01)
    # ECE of the other rows, at that temperature, by hand (15 bins)
    s = sims[0]
    rows = np.flatnonzero(~tatoeba_heldout(len(s)))
    probs = softmax(s[rows], t)
    conf, correct = probs.max(axis=1), (probs.argmax(axis=1) == rows).astype(float)
    bins = np.clip(np.ceil(conf * 15), 1, 15)
    expected = sum(abs(correct[bins == k].mean() - conf[bins == k].mean()) * (bins == k).mean()
                   for k in set(bins))
    out = tatoeba_calibration(s, t)
    assert out["ece"] == pytest.approx(expected)
    onehot = np.eye(len(s))[rows]
    assert out["brier"] == pytest.approx(((probs - onehot) ** 2).sum(axis=1).mean())
    assert sum(v for k, v in out.items() if k.endswith("_count")) == len(rows)
    assert "accuracy" not in out  # Tatoeba's accuracy is XTREME's, over every pair
