"""The demo suite's tagging task, ``demo-tags``: its rows, its determinism, and its way
through the registry (``load_rows`` and ``encode`` with the tiny tokenizer)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spaces.tasks import get_task
from trainables import demo_suite
from trainables.data import load_rows
from trainables.encoding import IGNORE_INDEX, encode

TAGS = {"O", "NEG", "NEU", "POS"}


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    demo_suite.write_suite(root)
    return root


def _rows(root, split: str = "train") -> list[dict]:
    path = root / "demo-tags" / f"{split}.en.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tags_rows_tag_each_word_with_its_polarity(suite):
    polarity = {c.forms["en"]: demo_suite.POLARITY_TAGS[c.polarity]
                for c in demo_suite.build_lexicon()}
    function_words = set(demo_suite._FUNCTION["en"].values())
    for split, n in demo_suite.SIZES["intermediate"].items():
        rows = _rows(suite, split)
        assert len(rows) == n
        assert not (suite / "demo-tags" / f"{split}.de.jsonl").exists()  # English only
        for row in rows:
            tokens, tags = row["tokens"], row["tags"]
            assert set(row) == {"tokens", "tags"}
            assert len(tokens) == len(tags) and set(tags) <= TAGS
            content = [(w, t) for w, t in zip(tokens, tags) if w not in function_words]
            assert 3 <= len(content) <= 5
            assert all(polarity[w] == t for w, t in content)
            assert all(t == "O" for w, t in zip(tokens, tags) if w in function_words)
    # mixed polarities, neutral included
    assert {t for row in _rows(suite) for t in row["tags"]} == TAGS


def test_build_is_deterministic_and_corpus_has_no_tags(suite, tmp_path):
    demo_suite.write_suite(tmp_path)
    for path in sorted(suite.rglob("*.jsonl")):
        assert path.read_bytes() == (tmp_path / path.relative_to(suite)).read_bytes()
    lines = demo_suite.corpus(suite)
    sentences = {" ".join(row["tokens"]) for row in _rows(suite, "dev")}
    assert sentences <= set(lines)  # the sentences are there, the tag strings are not
    tag_lines = {" ".join(row["tags"]) for split in ("train", "dev", "test")
                 for row in _rows(suite, split)}
    assert not tag_lines & set(lines)
    assert not any(set(line.split()) <= TAGS for line in lines)


def test_demo_tags_load_and_encode_through_the_registry():
    from transformers import AutoTokenizer

    from trainables.embedded_default import resolve_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint("embedded:tiny"))
    task = get_task("demo-tags")
    rows = load_rows(task, "train", "en")
    assert len(rows) == demo_suite.SIZES["intermediate"]["train"]
    enc = encode(task, rows, tokenizer, max_length=64, limit=50)
    assert len(enc) == 50
    for i, row in enumerate(rows.select(range(50))):
        labelled = np.flatnonzero(enc.labels[i] != IGNORE_INDEX)
        assert len(labelled) == len(row["tokens"])  # one label per word: its first sub-token
        got = [task.labels[t] for t in enc.labels[i][labelled]]
        assert got == row["tags"]
