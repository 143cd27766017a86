"""The multilingual demo suite: small, deterministic, offline, with real signal.

A vocabulary of concepts, each with a *polarity* (negative, neutral, positive)
and an independent *topic*. English writes each concept as a pseudo-word.
Every other language keeps a share of the English forms (anchors: the shared
subwords, names and loanwords real languages have in common) and writes the
rest with words of its own, built from its own syllables; its function words
differ, and ``sw`` also reverses word order. The anchor share falls with
"distance" (de 0.8, fr 0.6, sw 0.35), so zero-shot accuracy falls with it.

The target (``demo-sentiment``) asks whether a review pair is mostly positive:
it needs the polarity of its content words, and its English training set is
too small to learn most of them. ``demo-polarity`` (classification) and
``demo-match`` (multiple choice) teach polarities for the whole English
vocabulary, which reach other languages through the anchors: they help.
``demo-topic`` teaches the topic, which the target ignores: it does not.
``demo-tags`` (tagging) tags every word of an English sentence with its
polarity (``NEG``/``NEU``/``POS``, ``O`` for function words): it teaches the
same lexicon token by token; measured, on its own it does not help the
sentence-level target (benchmarks/demo_signal.py), like CCG in the paper.
``demo-polarity`` also comes in German (``demo-polarity@de``: the same rows drawn
with German forms and function words), a non-English intermediate task. Measured
alone (q-similarity, 3 seeds, zero-shot accuracy): it helps German as much as the
English data does (de 0.766 vs 0.763) and French about as much (0.601 vs 0.596), but
not Swahili (0.477 vs 0.599: Swahili's anchors are English forms, not German ones).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

SUITE_VERSION = "4"  # 3: demo-sentiment-ood; 4: demo-polarity in German (demo-polarity@de)

LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "sw")
ANCHOR_SHARE = {"en": 1.0, "de": 0.8, "fr": 0.6, "sw": 0.35}
POLARITIES = ("negative", "neutral", "positive")
TOPICS = ("animals", "food", "places", "tools")
N_CONCEPTS = 240

_SYLLABLES = {
    "en": ["ba", "ko", "mi", "ru", "te", "lo", "pa", "di", "ne", "su", "ga", "fo", "vi", "ze"],
    "de": ["sch", "ach", "ung", "ber", "kel", "pfa", "wun", "ost", "lie", "zei"],
    "fr": ["eau", "oir", "qui", "ette", "ain", "lou", "beu", "mour", "xe", "rai"],
    "sw": ["mwa", "ngu", "ki", "wa", "ji", "mbo", "nya", "shi", "tu", "za"],
}
_FUNCTION = {
    "en": {"the": "the", "was": "was", "and": "and", "it": "it", "but": "but", "is": "is"},
    "de": {"the": "der", "was": "war", "and": "und", "it": "es", "but": "aber", "is": "ist"},
    "fr": {"the": "le", "was": "était", "and": "et", "it": "il", "but": "mais", "is": "est"},
    "sw": {"the": "ya", "was": "ilikuwa", "and": "na", "it": "hii", "but": "lakini", "is": "ni"},
}

#: examples per split: intermediate tasks are English, and ``INTERMEDIATE_LANGUAGES``
#: in other languages too, at the same sizes; the target has an English train set and
#: dev/test sets in every language
SIZES = {"intermediate": {"train": 4000, "dev": 400, "test": 400},
         "target_train": 160, "target_eval": 400}


@dataclass(frozen=True)
class Concept:
    polarity: int  # index into POLARITIES
    topic: int  # index into TOPICS
    forms: dict[str, str]  # language -> surface form


def _word(rng: random.Random, syllables: list[str], taken: set[str]) -> str:
    while True:
        w = "".join(rng.choice(syllables) for _ in range(rng.choice((2, 3))))
        if w not in taken:
            taken.add(w)
            return w


def build_lexicon(seed: int = 0) -> list[Concept]:
    rng = random.Random(seed)
    taken: set[str] = set()
    concepts = []
    for i in range(N_CONCEPTS):
        en = _word(rng, _SYLLABLES["en"], taken)
        forms = {"en": en}
        for lang in LANGUAGES[1:]:
            forms[lang] = en if rng.random() < ANCHOR_SHARE[lang] else _word(rng, _SYLLABLES[lang], taken)
        concepts.append(Concept(polarity=i % 3, topic=(i // 3) % 4, forms=forms))
    return concepts


def _render(words: list[Concept], lang: str, template: tuple[str, ...]) -> str:
    """Fill a template of function words ('the', 'and', ...) and slots ('*')."""
    f = _FUNCTION[lang]
    it = iter(words)
    out = [next(it).forms[lang] if tok == "*" else f[tok] for tok in template]
    return " ".join(reversed(out) if lang == "sw" else out)


class _Draw:
    def __init__(self, concepts: list[Concept], rng: random.Random):
        self.rng = rng
        self.by_pol = {p: [c for c in concepts if c.polarity == p] for p in range(3)}
        self.by_topic = {t: [c for c in concepts if c.topic == t] for t in range(4)}

    def pol(self, p: int, k: int = 1) -> list[Concept]:
        return [self.rng.choice(self.by_pol[p]) for _ in range(k)]

    def topic(self, t: int, k: int = 1) -> list[Concept]:
        return [self.rng.choice(self.by_topic[t]) for _ in range(k)]


def _polarity_example(d: _Draw, lang: str = "en") -> dict:
    label = d.rng.randrange(2)
    words = d.pol(2 if label else 0) + d.pol(1, d.rng.randrange(2))
    d.rng.shuffle(words)
    return {"text_a": _render(words, lang, ("the",) + ("*",) * len(words)), "label": label}


def _topic_example(d: _Draw) -> dict:
    label = d.rng.randrange(4)
    words = d.topic(label, 2)
    return {"text_a": _render(words, "en", ("the", "*", "and", "*")), "label": label}


def _match_example(d: _Draw) -> dict:
    pol = d.rng.choice((0, 2))
    context = d.pol(pol, 2)
    others = [p for p in range(3) if p != pol]
    choices = [d.pol(pol)[0]] + [d.pol(d.rng.choice(others))[0] for _ in range(3)]
    order = list(range(4))
    d.rng.shuffle(order)
    return {
        "context": _render(context, "en", ("the", "*", "and", "*", "is")),
        "choices": [_render([choices[j]], "en", ("*",)) for j in order],
        "label": order.index(0),
    }


#: demo-tags: a content word's tag is its polarity; function words are "O"
POLARITY_TAGS = ("NEG", "NEU", "POS")
OTHER_TAG = "O"
_TAG_TEMPLATES = {
    3: ("the", "*", "and", "*", "was", "*"),
    4: ("the", "*", "and", "*", "was", "*", "but", "*"),
    5: ("the", "*", "and", "*", "was", "*", "but", "it", "is", "*", "*"),
}


def _tags_example(d: _Draw) -> dict:
    template = _TAG_TEMPLATES[d.rng.choice((3, 4, 5))]
    words = [d.pol(d.rng.randrange(3))[0] for _ in range(template.count("*"))]
    polarities = iter(w.polarity for w in words)
    tags = [POLARITY_TAGS[next(polarities)] if t == "*" else OTHER_TAG for t in template]
    return {"tokens": _render(words, "en", template).split(" "), "tags": tags}


def _sentiment_example(d: _Draw, lang: str) -> dict:
    label = d.rng.randrange(2)
    major, minor = (2, 0) if label else (0, 2)
    words = d.pol(major, d.rng.choice((2, 3))) + d.pol(minor, d.rng.randrange(2))
    words = (words + d.pol(1, 5))[:5]
    d.rng.shuffle(words)
    return {
        "text_a": _render(words[:3], lang, ("the", "*", "was", "*", "and", "*")),
        "text_b": _render(words[3:], lang, ("it", "was", "*", "but", "*")),
        "label": label,
    }


#: the suite's out-of-domain evaluation sets (``TrialConfig.ood_targets``)
OOD_TASKS = ("demo-sentiment-ood",)
#: the out-of-domain set's wordings (the target's: "the * was * and *" / "it was * but *")
_OOD_TEMPLATES = ((("it", "is", "*", "and", "*"), ("the", "*", "is", "*")),
                  (("but", "the", "*", "is", "*"), ("and", "it", "is", "*", "*")))
#: the out-of-domain set's reviews are all about one topic (the target's mix all four)
OOD_TOPIC = TOPICS.index("tools")


def _sentiment_ood_example(d: _Draw, lang: str) -> dict:
    """``_sentiment_example``'s question in other wordings, about one topic only."""
    label = d.rng.randrange(2)
    major, minor = (2, 0) if label else (0, 2)
    on_topic = d.by_topic[OOD_TOPIC]

    def pick(polarity: int, k: int) -> list[Concept]:
        pool = [c for c in on_topic if c.polarity == polarity]
        return [d.rng.choice(pool) for _ in range(k)]

    words = pick(major, d.rng.choice((2, 3))) + pick(minor, d.rng.randrange(2))
    words = (words + pick(1, 4))[:4]
    d.rng.shuffle(words)
    first, second = d.rng.choice(_OOD_TEMPLATES)
    return {"text_a": _render(words[:2], lang, first), "text_b": _render(words[2:], lang, second),
            "label": label}


#: intermediate tasks with training data in languages besides English (``task@lang``;
#: ``spaces.tasks`` registers them with these languages)
INTERMEDIATE_LANGUAGES = {"demo-polarity": ("de",)}


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def write_suite(root: Path, seed: int = 0) -> None:
    """Write every task's JSONL files as ``root/TASK/SPLIT.LANG.jsonl``."""
    concepts = build_lexicon(seed)
    # demo-tags last: a task's RNG seed holds its position, so the others' files stay as they were
    makers = {"demo-polarity": _polarity_example, "demo-topic": _topic_example,
              "demo-match": _match_example, "demo-tags": _tags_example}
    for offset, (task, make) in enumerate(makers.items()):
        for split, n in SIZES["intermediate"].items():
            d = _Draw(concepts, random.Random(f"{seed}/{task}/{split}/{offset}"))
            _write(root / task / f"{split}.en.jsonl", [make(d) for _ in range(n)])
    for split in ("train", "dev", "test"):
        for lang in LANGUAGES if split != "train" else ("en",):
            n = SIZES["target_train"] if split == "train" else SIZES["target_eval"]
            d = _Draw(concepts, random.Random(f"{seed}/demo-sentiment/{split}/{lang}"))
            _write(root / "demo-sentiment" / f"{split}.{lang}.jsonl",
                   [_sentiment_example(d, lang) for _ in range(n)])
    for split in ("train", "dev", "test"):  # written last: the files above stay as they were
        for lang in LANGUAGES if split != "train" else ("en",):
            n = SIZES["target_train"] if split == "train" else SIZES["target_eval"]
            d = _Draw(concepts, random.Random(f"{seed}/demo-sentiment-ood/{split}/{lang}"))
            _write(root / "demo-sentiment-ood" / f"{split}.{lang}.jsonl",
                   [_sentiment_ood_example(d, lang) for _ in range(n)])
    # written last, each from its own seed: the files above stay as they were
    for lang in INTERMEDIATE_LANGUAGES["demo-polarity"]:
        for split, n in SIZES["intermediate"].items():
            d = _Draw(concepts, random.Random(f"{seed}/demo-polarity/{split}/{lang}"))
            _write(root / "demo-polarity" / f"{split}.{lang}.jsonl",
                   [_polarity_example(d, lang) for _ in range(n)])


def corpus(root: Path) -> list[str]:
    """Every text of the suite, in a fixed order: the tokenizer's training corpus.

    Labels and tags are left out: they are not text the model reads. The out-of-domain
    set and the intermediate tasks' other languages are left out too: their words are the
    suite's (the target's dev and test sets hold every language's), and the tokenizer (and
    with it the tiny model) stays what it was before they existed.
    """
    lines = []
    for path in sorted(p for p in root.glob("*/*.jsonl") if _in_corpus(p)):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            lines.extend(v if isinstance(v, str) else " ".join(v)
                         for k, v in sorted(row.items()) if k not in ("label", "tags"))
    return lines


def _in_corpus(path: Path) -> bool:
    task, language = path.parent.name, path.name.split(".")[-2]
    return task not in OOD_TASKS and language not in INTERMEDIATE_LANGUAGES.get(task, ())
