"""``load_rows`` under faults: transient ones retried in-process (then ``FetchError``, which
Tune retries), missing data ``DataUnavailableError`` at once with its message.

The hub cannot be reached here: its answers are the hub client's real exceptions, raised
by a stand-in for ``datasets.load_dataset``, or served by a loopback HTTP server to the
real ``datasets``/``huggingface_hub`` stack in a subprocess.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import MappingProxyType

import datasets
import pytest

from spaces.tasks import TaskSource, get_task
from tests.trainables.hub_errors import hub_error
from trainables import data
from trainables.chaos import read_ledger
from trainables.data import DataUnavailableError, load_rows
from trainables.retry import FetchError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "xtreme"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """In-process retries without the seconds of backoff."""
    monkeypatch.setattr(data, "LOAD_BACKOFF_S", 0.001)
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    datasets.disable_progress_bars()


@pytest.fixture
def faults(monkeypatch, tmp_path):
    """``faults(spec)``: load faults of every run (``XSTILTS_FAULTS``), counted in a ledger."""
    ledger = tmp_path / "ledger.jsonl"
    monkeypatch.setenv("XSTILTS_LEDGER", str(ledger))

    def set_faults(spec: str) -> Path:
        monkeypatch.setenv("XSTILTS_FAULTS", json.dumps({"*": spec}))
        return ledger

    return set_faults


def _load_faults(ledger: Path, task: str) -> list[dict]:
    return [e for e in read_ledger(str(ledger)) if e["event"] == "fault"
            and e.get("phase") == "load" and e.get("task") == task]


def test_a_connection_error_while_loading_is_retried_and_the_load_succeeds(faults):
    task = get_task("demo-polarity")
    clean = load_rows(task, "train", "en")
    ledger = faults("connection:load:demo-polarity:2")  # the first two attempts fail
    rows = load_rows(task, "train", "en")
    assert len(_load_faults(ledger, "demo-polarity")) == 2
    assert rows.to_list() == clean.to_list()


def test_a_load_failing_on_every_attempt_raises_a_transient_fetch_error(faults):
    ledger = faults("connection:load:demo-polarity")
    with pytest.raises(FetchError) as caught:
        load_rows(get_task("demo-polarity"), "train", "en")
    message = str(caught.value)
    assert len(_load_faults(ledger, "demo-polarity")) == data.LOAD_ATTEMPTS
    assert "task 'demo-polarity', split 'train', language 'en'" in message
    assert "ConnectionError" in message and "search.max_failures" in message


class HubStandIn:
    """``datasets.load_dataset`` answering with ``errors`` in turn, then with the fixture
    rows of the task (the hub's schema); counts its calls."""

    def __init__(self, *errors: BaseException):
        self.errors, self.calls = list(errors), 0
        self.real = datasets.load_dataset

    def __call__(self, path, *args, **kwargs):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.real("json", data_files=str(FIXTURES / "sst2" / "train.en.jsonl"),
                         split="train")


def test_http_429_then_503_from_the_hub_are_retried(monkeypatch):
    hub = HubStandIn(hub_error(429), hub_error(503))
    monkeypatch.setattr(datasets, "load_dataset", hub)
    rows = load_rows(get_task("sst2"), "train", "en")
    assert hub.calls == 3 and len(rows) > 0


def test_a_hub_that_keeps_answering_503_gives_a_fetch_error_naming_the_split(monkeypatch):
    hub = HubStandIn(*(hub_error(503) for _ in range(data.LOAD_ATTEMPTS)))
    monkeypatch.setattr(datasets, "load_dataset", hub)
    with pytest.raises(FetchError, match=r"task 'sst2', split 'train', language 'en' from "
                                         r"nyu-mll/glue \(sst2\) \(3 attempts\).*503"):
        load_rows(get_task("sst2"), "train", "en")
    assert hub.calls == data.LOAD_ATTEMPTS


def test_a_dataset_the_hub_does_not_have_is_permanent_at_once(monkeypatch):
    missing = datasets.exceptions.DatasetNotFoundError(
        "Dataset 'nyu-mll/glue' doesn't exist on the Hub or cannot be accessed.")
    missing.__cause__ = hub_error(404, **{"X-Error-Code": "RepoNotFound"})
    hub = HubStandIn(missing)
    monkeypatch.setattr(datasets, "load_dataset", hub)
    with pytest.raises(DataUnavailableError, match="DatasetNotFoundError.*doesn't exist"):
        load_rows(get_task("sst2"), "train", "en")
    assert hub.calls == 1


@pytest.fixture
def local_dataset(tmp_path):
    """A dataset folder ``datasets.load_dataset`` reads as it reads a hub id (config
    ``default``, split ``train``), and a counter of its calls."""
    folder = tmp_path / "glue-like"
    folder.mkdir()
    (folder / "train.jsonl").write_text((FIXTURES / "sst2" / "train.en.jsonl").read_text())
    return folder


def _hf_task(folder: Path, *, config: str | None, split: str):
    sst2 = get_task("sst2")
    return dataclasses.replace(sst2, source=TaskSource(
        "hf", str(folder), config, splits=MappingProxyType({"train": split})))


@pytest.mark.parametrize("config, split, message", [
    ("nope", "train", "BuilderConfig 'nope' not found"),
    (None, "validation", "Unknown split \"validation\""),
])
def test_a_missing_config_or_split_is_permanent_with_its_message(local_dataset, monkeypatch,
                                                                 config, split, message):
    calls = []
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or real(*a, **k))
    task = _hf_task(local_dataset, config=config, split=split)
    assert len(load_rows(_hf_task(local_dataset, config=None, split="train"), "train", "en"))
    calls.clear()
    with pytest.raises(DataUnavailableError) as caught:
        load_rows(task, "train", "en")
    assert message in str(caught.value) and str(local_dataset) in str(caught.value)
    assert len(calls) == 1  # not retried


def test_a_missing_local_file_is_permanent_with_its_path(tmp_path):
    ccg = get_task("ccg")
    task = dataclasses.replace(ccg, source=dataclasses.replace(
        ccg.source, path=str(tmp_path / "{split}.{lang}.jsonl")))
    with pytest.raises(DataUnavailableError, match=f"{tmp_path}/train.en.jsonl"):
        load_rows(task, "train", "en")


HUB_SCRIPT = textwrap.dedent("""
    import http.server, json, os, sys, threading

    class Hub(http.server.BaseHTTPRequestHandler):
        def answer(self):
            status = 429 if "ratelimited" in self.path else 503 if "down" in self.path else 404
            self.send_response(status)
            self.send_header("Retry-After", "0")
            if status == 404:
                self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
        do_GET = do_HEAD = answer
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{server.server_address[1]}"

    import dataclasses
    from huggingface_hub import constants
    import datasets
    from spaces.tasks import TaskSource, get_task
    from trainables import data

    data.LOAD_ATTEMPTS = 1  # the hub client retries 429 and 5xx itself (5 times)
    out = {}
    for case in ("org/ratelimited", "org/down", "org/missing", "offline"):
        if case == "offline":
            constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
        task = dataclasses.replace(get_task("sst2"), source=TaskSource(
            "hf", "org/any" if case == "offline" else case))
        try:
            data.load_rows(task, "train", "en")
            out[case] = ["loaded", ""]
        except Exception as exc:
            out[case] = [type(exc).__name__, str(exc)]
    print("RESULT " + json.dumps(out))
""")


def test_the_installed_hub_stack_answering_429_503_404_and_offline(tmp_path):
    """The exceptions ``datasets`` and ``huggingface_hub`` really raise, end to end, from a
    loopback hub (HF_ENDPOINT is read at import: a subprocess)."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(ROOT)}
    for key in ("HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, "-c", HUB_SCRIPT], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[0].removeprefix("RESULT "))
    kind, message = out["org/ratelimited"]
    assert kind == "FetchError" and "429" in message, message
    kind, message = out["org/down"]
    assert kind == "FetchError" and "503" in message, message
    kind, message = out["org/missing"]
    assert kind == "DataUnavailableError" and "org/missing" in message, message
    kind, message = out["offline"]
    assert kind == "DataUnavailableError" and "HF_HUB_OFFLINE" in message, message
    assert "xstilts prepare" in message


def _as_ray_reports(exc: BaseException) -> str:
    """The sweep's reading of ``exc`` raised in a Train worker: Ray Train's worker-group
    error (which keeps the last 500 characters of the traceback), then ``root_cause``."""
    from ray.train.v2._internal.execution.worker_group.poll import (WorkerGroupPollStatus,
                                                                    WorkerStatus)
    from ray.train.v2._internal.util import construct_user_exception_with_traceback

    from search.failures import root_cause

    try:
        raise exc
    except Exception as raised:  # noqa: BLE001 - formatted as the worker formats it
        error = construct_user_exception_with_traceback(raised)
    status = WorkerGroupPollStatus({0: WorkerStatus(running=False, error=error)})
    return root_cause(status.get_worker_group_error())


def test_the_sweep_still_reads_the_class_of_a_long_load_error(faults, tmp_path):
    from search.failures import is_permanent

    deep = tmp_path / ("a-long-folder-name-" * 6) / ("and-another-one-" * 5)
    deep.mkdir(parents=True)
    for name in ("train.en.jsonl", "dev.en.jsonl"):
        (deep / name).write_bytes((FIXTURES / "ccg" / "train.en.jsonl").read_bytes())
    ccg = get_task("ccg")
    task = dataclasses.replace(ccg, source=dataclasses.replace(
        ccg.source, path=str(deep / "{split}.{lang}.jsonl")))

    missing = dataclasses.replace(task, source=dataclasses.replace(
        task.source, path=str(deep / "missing" / "{split}.{lang}.jsonl")))
    with pytest.raises(DataUnavailableError) as permanent:
        load_rows(missing, "train", "en")
    cause = _as_ray_reports(permanent.value)
    assert cause.startswith("trainables.data.DataUnavailableError: could not load") and \
        is_permanent(cause), cause

    faults("connection:load:ccg")
    with pytest.raises(FetchError) as transient:
        load_rows(task, "train", "en")
    cause = _as_ray_reports(transient.value)
    assert cause.startswith("trainables.retry.FetchError: could not fetch") and \
        not is_permanent(cause), cause
