"""Sweeps on S3 storage, against a real S3-protocol server on loopback (moto).

The CLI runs in a subprocess with ``AWS_ENDPOINT_URL`` and friends set: the
Ray it starts passes that environment to every worker, so Tune's driver, the
Train workers (checkpoints) and the results writer all reach the server through
plain ``s3://BUCKET/PREFIX`` URIs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from tests.logs import unexpected_tracebacks
from tests.s3server import child_env, free_port, moto_s3, point_at

NAME = "s3demo"
#: two short trials of the demo preset, one at a time, no early stopping
SWEEP_ARGS = ["--trials", "2", "--set", "search.concurrency=1", "--set", "search.asha_grace=0",
              "--set", "search.space.intermediate_steps=[10,20,10]",
              "--set", "search.space.target_epochs=[1]", "--set", "max_train_examples=64",
              "--set", "max_eval_examples=64", "--set", "eval_every=0"]


def _xstilts(*args, env, cwd, timeout):
    return subprocess.run([sys.executable, "-m", "search.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def s3():
    with moto_s3("xstilts-sweeps") as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def _no_ray_here():
    """The subprocesses start their own Ray: not two local Rays on the same cores."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def s3_env(s3, monkeypatch):
    """This process pointed at the server too, for the query API."""
    return point_at(s3, monkeypatch)


@pytest.fixture(scope="module")
def s3_sweep(s3, tmp_path_factory):
    """One demo sweep written to s3://BUCKET/sweeps/NAME by `xstilts run`, from an empty cwd."""
    cwd = tmp_path_factory.mktemp("s3-cwd")
    storage = f"s3://{s3.bucket}/sweeps"
    start = time.monotonic()
    proc = _xstilts("run", "demo", "--storage", storage, "--name", NAME, *SWEEP_ARGS,
                    env=child_env(dict(os.environ), s3.endpoint), cwd=cwd, timeout=600)
    return {"proc": proc, "path": f"{storage}/{NAME}", "cwd": cwd,
            "seconds": time.monotonic() - start}


@pytest.mark.ray  # `xstilts run` starts a local Ray in its subprocess
def test_sweep_on_s3_writes_results_and_checkpoints_to_the_bucket_only(s3, s3_sweep, s3_env):
    from search.query import best, load_sweep

    proc = s3_sweep["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert not unexpected_tracebacks(proc.stderr), unexpected_tracebacks(proc.stderr)
    assert f"best configurations of {s3_sweep['path']}" in proc.stdout

    # the project's own reader, through the same URI
    sweep = load_sweep(s3_sweep["path"])
    assert len(sweep.trials) == 2 and sweep.trials["trial_id"].is_unique
    assert set(sweep.trials["status"]) == {"finished"}, sweep.trials[["trial_id", "status", "error"]]
    assert sweep.trials["objective"].notna().all()
    assert set(sweep.languages["language"]) == {"en", "de", "fr", "sw"}
    assert len(best(sweep, k=5)) == 2

    # really in the bucket: the results tables, and the Train workers' checkpoints
    keys = s3.keys(f"sweeps/{NAME}")
    for table in ("trials", "languages", "history"):
        assert f"sweeps/{NAME}/results/{table}.parquet" in keys, keys
    assert not [k for k in keys if ".tmp-" in k], keys  # every temporary file was moved
    table = pq.read_table(f"{s3.bucket}/sweeps/{NAME}/results/trials.parquet",
                          filesystem=s3.filesystem())
    assert table.schema.metadata[b"xstilts.schema"] == b"3" and table.num_rows == 2
    for trial_id in sweep.trials["trial_id"]:
        assert any(k.startswith(f"sweeps/{NAME}/train/train-{trial_id}/checkpoint_")
                   for k in keys), (trial_id, keys)

    # and nothing on the local disk where the command ran
    assert not (s3_sweep["cwd"] / "xstilts-runs").exists()
    assert list(s3_sweep["cwd"].iterdir()) == []


@pytest.mark.ray
def test_best_json_reads_the_sweep_from_s3(s3, s3_sweep, s3_env, tmp_path):
    assert s3_sweep["proc"].returncode == 0, s3_sweep["proc"].stderr[-3000:]
    proc = _xstilts("best", s3_sweep["path"], "--json", env=child_env(dict(os.environ), s3.endpoint),
                    cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 2
    assert [r["objective"] for r in rows] == sorted((r["objective"] for r in rows), reverse=True)
    for r in rows:
        assert r["status"] == "finished" and r["config"]["target"] == "demo-sentiment"
        assert r["config"]["model_size"] == "tiny"


@pytest.mark.ray  # `xstilts run` starts a local Ray in its subprocess
def test_report_reads_the_sweep_from_s3_and_writes_the_page_locally(s3, s3_sweep, tmp_path):
    assert s3_sweep["proc"].returncode == 0, s3_sweep["proc"].stderr[-3000:]
    env = child_env(dict(os.environ), s3.endpoint)
    proc = _xstilts("report", s3_sweep["path"], env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = tmp_path / f"report-{NAME}" / "report.html"  # a remote sweep's page: in the cwd
    assert proc.stdout.strip().endswith(str(page))
    text = page.read_text()
    assert "2 trials recorded, 2 finished" in text and "data:image/png;base64," in text
    assert {p.name for p in (page.parent / "figures").iterdir()} >= {"progress.png",
                                                                      "calibration.png"}


@pytest.mark.ray
def test_checkpoint_paths_are_uris_into_the_bucket(s3, s3_sweep, s3_env):
    from search.query import load_sweep

    assert s3_sweep["proc"].returncode == 0, s3_sweep["proc"].stderr[-3000:]
    paths = load_sweep(s3_sweep["path"]).trials["checkpoint_path"].tolist()
    root = f"s3://{s3.bucket}/"
    assert all(isinstance(p, str) and p.startswith(f"{root}sweeps/{NAME}/train/train-")
               for p in paths), paths
    keys = s3.keys(f"sweeps/{NAME}/train")
    for p in paths:  # a folder with the checkpoint's files
        assert any(k.startswith(p[len(root):] + "/") for k in keys), (p, keys)


def _refused(proc, uri: str, seconds: float, cwd) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("xstilts: error: "), proc.stderr
    assert repr(uri) in lines[0] or uri in lines[0], lines[0]
    assert seconds < 60, f"took {seconds:.0f} s to refuse {uri}"
    assert list(cwd.iterdir()) == []


def test_missing_bucket_is_refused_before_anything_starts(s3, tmp_path):
    uri = "s3://no-such-bucket/x"
    start = time.monotonic()
    proc = _xstilts("run", "demo", "--storage", uri, "--name", "n",
                    env=child_env(dict(os.environ), s3.endpoint), cwd=tmp_path, timeout=120)
    _refused(proc, uri, time.monotonic() - start, tmp_path)
    assert "no-such-bucket" in proc.stderr


def test_unreachable_endpoint_is_refused_in_seconds(tmp_path):
    # a closed port: connection refused at once; pyarrow's default retries still take ~12 s
    uri = "s3://xstilts-sweeps/x"
    start = time.monotonic()
    proc = _xstilts("run", "demo", "--storage", uri, "--name", "n",
                    env=child_env(dict(os.environ), f"http://127.0.0.1:{free_port()}"),
                    cwd=tmp_path, timeout=120)
    _refused(proc, uri, time.monotonic() - start, tmp_path)


def test_silent_endpoint_is_refused_in_seconds(tmp_path):
    """An endpoint that accepts connections and never answers (a hung proxy, a firewall)."""
    uri = "s3://xstilts-sweeps/x"
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # the kernel completes the handshakes; nobody ever reads
        env = child_env(dict(os.environ), f"http://127.0.0.1:{silent.getsockname()[1]}")
        start = time.monotonic()
        try:
            proc = _xstilts("run", "demo", "--storage", uri, "--name", "n", env=env,
                            cwd=tmp_path, timeout=50)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`xstilts run --storage {uri}` against a silent endpoint did not end "
                        "within 50 s")
    _refused(proc, uri, time.monotonic() - start, tmp_path)


@pytest.mark.parametrize("uri, needle", [
    ("s3://xstilts-sweeps/x?region=us-east-1", "query string"),  # paths are appended to it
    ("nope://x", "Unrecognized filesystem type"),
])
def test_storage_uri_pyarrow_cannot_use_is_refused(uri, needle, s3, tmp_path):
    start = time.monotonic()
    proc = _xstilts("run", "demo", "--storage", uri, "--name", "n",
                    env=child_env(dict(os.environ), s3.endpoint), cwd=tmp_path, timeout=120)
    _refused(proc, uri, time.monotonic() - start, tmp_path)
    assert needle in proc.stderr
