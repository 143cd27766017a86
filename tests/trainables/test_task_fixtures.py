"""Every task of the registry, read from its fixture files (the hub's schema) and encoded.

``tests/fixtures/xtreme`` is a local mirror of the hub (``XSTILTS_DATA_DIR``); each
task's files go through ``load_rows`` and ``encode`` with the tiny tokenizer, and the
encodings are checked against the raw rows: span positions against the answer text,
tag labels against the words, choice labels against the choice text, retrieval pairs
against the rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spaces.tasks import get_task, task_names
from trainables.data import DataUnavailableError, load_rows, mirror_file
from trainables.encoding import IGNORE_INDEX, UNK_TAG, build_tables, encode, tag_vocabulary
from trainables.metrics import squad_normalize

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xtreme"
TASKS = sorted(p.name for p in FIXTURES.iterdir() if (p / "meta.json").exists())
MAX_LENGTH, STRIDE = 128, 32  # the tiny tokenizer is close to one token per character


def _meta(task: str) -> dict:
    return json.loads((FIXTURES / task / "meta.json").read_text())


def _files(task: str):
    """(our split, language, raw rows) of each fixture file of a task."""
    meta = _meta(task)
    for ours, name in meta["fixture_splits"].items():
        for lang in meta["fixture_files"][name]:
            path = FIXTURES / task / f"{name}.{lang}.jsonl"
            yield ours, lang, [json.loads(line) for line in path.read_text().splitlines()]


def test_fixtures_cover_the_papers_18_tasks():
    real = [n for n in task_names() if not n.startswith("demo-")]
    assert TASKS == real and len(TASKS) == 18


# --- the registry against the fixtures' meta.json ---------------------------------------------
_OURS = {  # where the registry deliberately differs from the hub's record
    ("cosmosqa", "context"): ["context", "question"],  # the question follows the context
}


@pytest.mark.parametrize("name", TASKS)
def test_registry_row_matches_the_hub_record(name):
    task, meta = get_task(name), _meta(name)
    src = task.source
    assert (task.role, task.format) == (meta["role"], meta["format"])
    if meta["hf_path"] is None:
        assert src.kind == "files"  # CCGbank is licensed
    else:
        assert (src.kind, src.path, src.config) == ("hf", meta["hf_path"], meta["hf_config"])
    assert dict(src.splits) == meta["splits"]
    assert {ours: src.mirror_split(ours) for ours in meta["fixture_splits"]} == \
        meta["fixture_splits"]
    assert dict(src.config_languages) == (meta.get("hf_config_lang") or {})
    if "language_filter" in meta:
        assert src.language_filter.column == meta["language_filter"]["column"]
        assert dict(src.language_filter.values) == meta["language_filter"]["lang_names"]
    else:
        assert src.language_filter is None
    for canonical, column in meta["canonical_columns"].items():
        ours = task.columns[canonical]
        ours = list(ours) if isinstance(ours, tuple) else ours
        assert ours == _OURS.get((name, canonical), column), canonical
    if name == "pawsx":  # the hub's ClassLabel names are "0"/"1"; ours say what they mean
        assert len(task.labels) == len(meta["label_names"])
    else:
        assert list(task.labels) == meta["label_names"]
    if task.format == "retrieval":  # English is the side every language is paired with
        assert task.train_language == "en" and list(task.zero_shot_languages) == meta["languages"]
    else:
        assert list(task.languages) == meta["languages"]
    if "train_source" in meta:
        assert get_task(task.train_task).source.path == meta["train_source"]["hf_path"]


# --- every fixture file through load_rows + encode ------------------------------------------
def _check_classification(task, rows, enc, tok):
    labels = [r[task.columns["label"]] for r in rows]
    assert enc.labels.tolist() == labels
    assert ((enc.labels >= 0) & (enc.labels < task.num_labels)).all()
    assert all(ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id for ids in enc.ids)


def _choices(name, row):
    """(context, choices, index of the right choice) read straight from a raw row."""
    if name == "commonsenseqa":
        return (row["question"], row["choices"]["text"],
                row["choices"]["label"].index(row["answerKey"]))
    if name == "cosmosqa":
        return (row["context"] + " " + row["question"],
                [row[f"answer{i}"] for i in range(4)], row["label"])
    assert name == "hellaswag"
    return row["ctx"], row["endings"], int(row["label"])


def _check_multiple_choice(task, rows, enc, tok):
    assert len(enc) == len(rows)
    for i, row in enumerate(rows):
        context, choices, right = _choices(task.name, row)
        assert enc.labels[i] == right and len(enc.ids[i]) == len(choices) == task.num_labels
        expected = tok(context, choices[right], truncation=True, max_length=MAX_LENGTH)
        assert enc.ids[i][right].tolist() == expected["input_ids"]  # the label points at its choice


def _check_span_qa(task, rows, enc, tok, lang):
    assert enc.example_ids == [r["id"] for r in rows]
    assert enc.answers == [r["answers"]["text"] for r in rows]
    assert sorted(set(enc.feature_example.tolist())) == list(range(len(rows)))
    found = set()
    for f in range(len(enc)):
        row = rows[enc.feature_example[f]]
        offsets, s, e = enc.offsets[f], enc.start_positions[f], enc.end_positions[f]
        first = row["answers"]["answer_start"][0]
        last = first + len(row["answers"]["text"][0])
        window = [o for o in offsets if o is not None]
        inside = window[0][0] <= first and window[-1][1] >= last
        if not inside:  # the answer is (partly) outside this window: CLS, as run_qa
            assert s == e == 0
            continue
        found.add(int(enc.feature_example[f]))
        assert 0 < s <= e and offsets[s] is not None and offsets[e] is not None
        span = row["context"][offsets[s][0]:offsets[e][1]]
        # the smallest token span around the answer
        assert offsets[s][0] <= first < offsets[s][1] and offsets[e][0] < last <= offsets[e][1]
        starts, ends = {o[0] for o in window}, {o[1] for o in window}
        if first in starts and last in ends:  # the answer falls on token boundaries
            assert squad_normalize(span, lang if task.name == "mlqa" else None) == \
                squad_normalize(row["answers"]["text"][0], lang if task.name == "mlqa" else None)
        else:  # one unknown-token piece holds the answer and more (CJK, Arabic here)
            assert row["answers"]["text"][0] in span
    assert found == set(range(len(rows)))  # every answer is inside some window


def _check_tagging(task, rows, enc, names):
    tags = task.columns["tags"]
    assert len(enc) == len(rows)
    for i, row in enumerate(rows):
        labelled = np.flatnonzero(enc.labels[i] != IGNORE_INDEX)
        assert len(labelled) == len(row["tokens"])  # one label per word: its first sub-token
        assert enc.labels[i][0] == enc.labels[i][-1] == IGNORE_INDEX  # <s> and </s>
        assert enc.first_token[i].tolist() == labelled.tolist()
        got = [names[t] for t in enc.labels[i][labelled]]
        if task.label_encoding == "index":
            assert got == [names[t] for t in row[tags]]
        else:  # supertags unseen in the training file are UNK
            assert got == [t if t in names else UNK_TAG for t in row[tags]]


def _check_retrieval(task, rows, enc):
    if task.name == "tatoeba":  # row i <-> row i
        assert enc.gold.tolist() == [[i, i] for i in range(len(rows))]
    else:  # BUCC: each row is a gold pair of sentence ids
        assert enc.gold_keys() == [(r["source_lang"], r["target_lang"]) for r in rows]
    for (s, t), row in zip(enc.gold.tolist(), rows):
        assert enc.source_texts[s] == row["source_sentence"].strip()
        assert enc.target_texts[t] == row["target_sentence"].strip()
    batches = list(enc.batches("source", 2))
    assert sorted(int(i) for b in batches for i in b["index"]) == list(range(len(enc.source_ids)))


@pytest.mark.parametrize("name", TASKS)
def test_fixture_files_load_and_encode(name, mirror, tokenizer):
    task = get_task(name)
    names = task.labels
    if name == "ccg":  # tag names come from the training file; rare tags become UNK
        names = tag_vocabulary(task, load_rows(task, "train", "en"), min_count=2)
        assert names[0] == UNK_TAG and len(names) > 5
    checked = 0
    for split, lang, raw in _files(name):
        rows = load_rows(task, split, lang)
        assert len(rows) == len(raw)
        enc = encode(task, rows, tokenizer, max_length=MAX_LENGTH, stride=STRIDE,
                     label_names=names if task.format == "tagging" else None)
        if task.format == "classification":
            _check_classification(task, raw, enc, tokenizer)
        elif task.format == "multiple_choice":
            _check_multiple_choice(task, raw, enc, tokenizer)
        elif task.format == "span_qa":
            _check_span_qa(task, raw, enc, tokenizer, lang)
        elif task.format == "tagging":
            _check_tagging(task, raw, enc, names)
        else:
            _check_retrieval(task, raw, enc)
        checked += 1
    assert checked == sum(len(v) for v in _meta(name)["fixture_files"].values())


@pytest.mark.parametrize("name", TASKS)
def test_hub_feature_types_encode_the_same(name, mirror, tokenizer):
    """A fixture read with the hub's exact features (ClassLabel, int32) encodes the same."""
    import datasets

    task, meta = get_task(name), _meta(name)
    split, lang, _ = next(_files(name))
    path = mirror_file(task, split, lang)
    typed = datasets.load_dataset("json", data_files=str(path), split="train",
                                  features=datasets.Features.from_dict(meta["features"]))
    kw = dict(max_length=MAX_LENGTH, stride=STRIDE,
              label_names=tag_vocabulary(task, typed) if task.format == "tagging" else None)
    (a, meta_a), (b, meta_b) = (build_tables(task, rows, tokenizer, **kw)
                                for rows in (load_rows(task, split, lang), typed))
    assert meta_a == meta_b and a.keys() == b.keys()
    for name_ in a:  # the same Arrow tables: ids, labels, positions, gold, texts
        assert a[name_].equals(b[name_]), name_


# --- the mirror's edges -----------------------------------------------------------------------
def test_tydiqa_rows_are_picked_by_id_prefix(tmp_path, monkeypatch):
    rows = [line for lang in ("en", "fi", "ar")
            for line in (FIXTURES / "tydiqa" / f"validation.{lang}.jsonl").read_text().splitlines()]
    (tmp_path / "tydiqa").mkdir()
    (tmp_path / "tydiqa" / "validation.fi.jsonl").write_text("\n".join(rows) + "\n")  # mixed
    monkeypatch.setenv("XSTILTS_DATA_DIR", str(tmp_path))
    picked = load_rows(get_task("tydiqa"), "test", "fi")
    assert len(picked) == 3 and all(i.startswith("finnish-") for i in picked["id"])


def test_parquet_mirror_and_clear_errors(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = [json.loads(x) for x in (FIXTURES / "xnli" / "test.de.jsonl").read_text().splitlines()]
    (tmp_path / "xnli").mkdir()
    pq.write_table(pa.Table.from_pylist(raw), tmp_path / "xnli" / "test.de.parquet")
    monkeypatch.setenv("XSTILTS_DATA_DIR", str(tmp_path))
    assert load_rows(get_task("xnli"), "test", "de")["premise"] == [r["premise"] for r in raw]
    with pytest.raises(DataUnavailableError, match="XSTILTS_DATA_DIR is set.*test.fr.jsonl"):
        load_rows(get_task("xnli"), "test", "fr")
    with pytest.raises(DataUnavailableError, match="has no 'train' split; it has: test"):
        load_rows(get_task("xquad"), "train", "en")
    monkeypatch.delenv("XSTILTS_DATA_DIR")
    with pytest.raises(DataUnavailableError, match="no config for language 'xx'"):
        load_rows(get_task("udpos"), "test", "xx")  # fails before reaching for the hub


def test_demo_tasks_ignore_the_mirror(monkeypatch):
    monkeypatch.setenv("XSTILTS_DATA_DIR", "/nonexistent")
    assert mirror_file(get_task("demo-polarity"), "train", "en") is None
    assert len(load_rows(get_task("demo-polarity"), "train", "en")) > 0


def test_labels_and_windows_fail_clearly(mirror, tokenizer):
    with pytest.raises(DataUnavailableError, match="tag_vocabulary"):
        encode(get_task("ccg"), load_rows(get_task("ccg"), "dev", "en"), tokenizer, max_length=64)
    with pytest.raises(ValueError, match="stride=100"):
        encode(get_task("squad"), load_rows(get_task("squad"), "dev", "en"), tokenizer,
               max_length=128, stride=100)
    rows = load_rows(get_task("hellaswag"), "dev", "en").map(lambda r: {"label": ""})
    with pytest.raises(DataUnavailableError, match="labels '' are not among"):
        encode(get_task("hellaswag"), rows, tokenizer, max_length=64)
