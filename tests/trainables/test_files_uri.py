"""``files`` tasks whose path is a storage URI, read and preflighted through pyarrow's
filesystem against a real S3-protocol server on loopback (moto); and local paths that
trials could not resolve, refused before launch."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from spaces import tasks
from spaces.tasks import get_task
from tests.s3server import free_port, moto_s3, point_at, s3_env
from trainables import data
from trainables.data import DataUnavailableError, load_rows
from trainables.encoding import encode, tag_vocabulary
from trainables.preflight import preflight

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xtreme"
CCG = {"train": FIXTURES / "ccg" / "train.en.jsonl",
       "dev": FIXTURES / "ccg" / "validation.en.jsonl"}


@pytest.fixture(scope="module")
def s3():
    with moto_s3("xstilts-data") as server:
        fs = server.filesystem()
        for split, path in CCG.items():  # CCG's own split names: train, dev
            with fs.open_output_stream(f"{server.bucket}/ccg/{split}.en.jsonl") as f:
                f.write(path.read_bytes())
            table = datasets.load_dataset("json", data_files=str(path), split="train").data.table
            pq.write_table(table, f"{server.bucket}/ccg-parquet/{split}.en.parquet",
                           filesystem=fs)
        yield server


@pytest.fixture
def s3_env_here(s3, monkeypatch):
    """This process pointed at the server, as a node's environment (or role) would be."""
    point_at(s3, monkeypatch)
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(data, "LOAD_BACKOFF_S", 0.001)
    datasets.disable_progress_bars()
    return s3.env


def files_task(monkeypatch, name: str, path: str):
    """CCG reading ``path`` (a template), registered as ``name`` for this test."""
    ccg = get_task("ccg")
    task = dataclasses.replace(ccg, name=name,
                               source=dataclasses.replace(ccg.source, path=path))
    monkeypatch.setitem(tasks._REGISTRY, name, task)
    return task


def _local(split: str):
    return datasets.load_dataset("json", data_files=str(CCG[split]), split="train")


@pytest.mark.parametrize("template", ["ccg/{split}.{lang}.jsonl",
                                      "ccg-parquet/{split}.{lang}.parquet"])
def test_a_files_task_on_s3_loads_as_its_local_files_do(s3, s3_env_here, monkeypatch, template,
                                                        tokenizer):
    task = files_task(monkeypatch, "ccg-s3", f"s3://{s3.bucket}/{template}")
    for split in ("train", "dev"):
        rows, local = load_rows(task, split, "en"), _local(split)
        assert rows.features == local.features
        assert rows.to_list() == local.to_list()
    names = tag_vocabulary(task, load_rows(task, "train", "en"), min_count=1)
    encoded = encode(task, load_rows(task, "dev", "en"), tokenizer, max_length=64,
                     label_names=names)
    assert len(encoded) == len(_local("dev"))


def test_a_files_task_on_s3_passes_preflight(s3, s3_env_here, monkeypatch):
    files_task(monkeypatch, "ccg-s3", f"s3://{s3.bucket}/ccg/{{split}}.{{lang}}.jsonl")
    assert preflight(["ccg-s3"], []) == []


def test_a_missing_uri_file_fails_preflight_naming_it(s3, s3_env_here, monkeypatch):
    files_task(monkeypatch, "ccg-s3", f"s3://{s3.bucket}/nowhere/{{split}}.{{lang}}.jsonl")
    problems = preflight(["ccg-s3"], [])
    uri = f"s3://{s3.bucket}/nowhere/train.en.jsonl"
    assert len(problems) == 1 and repr(uri) in problems[0], problems
    assert "does not exist" in problems[0] and "upload" in problems[0]


def test_a_missing_uri_file_is_permanent_when_loading(s3, s3_env_here, monkeypatch):
    task = files_task(monkeypatch, "ccg-s3", f"s3://{s3.bucket}/nowhere/{{split}}.{{lang}}.jsonl")
    with pytest.raises(DataUnavailableError, match=f"s3://{s3.bucket}/nowhere/train.en.jsonl"):
        load_rows(task, "train", "en")


def test_a_uri_pyarrow_cannot_open_fails_preflight(s3_env_here, monkeypatch):
    files_task(monkeypatch, "ccg-x", "nope://bucket/{split}.{lang}.jsonl")
    problems = preflight(["ccg-x"], [])
    assert len(problems) == 1 and "'nope://bucket/train.en.jsonl'" in problems[0], problems
    assert "not a URI pyarrow can open" in problems[0]


def test_an_unreachable_storage_fails_preflight_in_seconds(monkeypatch):
    for key, value in s3_env(f"http://127.0.0.1:{free_port()}").items():
        monkeypatch.setenv(key, value)
    files_task(monkeypatch, "ccg-s3", "s3://xstilts-data/ccg/{split}.{lang}.jsonl")
    start = time.monotonic()
    problems = preflight(["ccg-s3"], [])
    assert time.monotonic() - start < 30
    assert len(problems) == 1 and "could not reach 's3://xstilts-data/ccg/train.en.jsonl'" \
        in problems[0], problems


def test_a_relative_files_path_fails_preflight_even_where_it_exists(tmp_path, monkeypatch):
    # trials run in their own working directory: the file the head sees is not theirs
    (tmp_path / "ccgbank").mkdir()
    (tmp_path / "ccgbank" / "train.en.jsonl").write_bytes(CCG["train"].read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    problems = preflight(["ccg"], [])  # the registry's CCG: ccgbank/{split}.{lang}.jsonl
    assert len(problems) == 1 and "relative path 'ccgbank/{split}.{lang}.jsonl'" in problems[0]
    assert "XSTILTS_FILES_CCG" in problems[0] and "s3://" in problems[0]


def test_a_files_task_reads_where_its_variable_points(monkeypatch):
    """``XSTILTS_FILES_CCG`` (as cluster.yaml exports it) replaces CCG's relative default."""
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("XSTILTS_FILES_CCG", str(FIXTURES / "ccg" / "{split}.{lang}.jsonl"))
    assert preflight(["ccg"], []) == []
    rows = data.load_rows(get_task("ccg"), "train", "en")
    assert len(rows) == len(CCG["train"].read_text().splitlines())


def test_an_absolute_files_path_passes_preflight(monkeypatch):
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    files_task(monkeypatch, "ccg-abs", str(FIXTURES / "ccg" / "{split}.{lang}.jsonl"))
    assert preflight(["ccg-abs"], []) == []
