"""Shared fixtures: a local Ray for the whole session and a fresh embedded cache."""

from __future__ import annotations

import os
import sys

import pytest


@pytest.fixture(scope="session", autouse=True)
def embedded_cache(tmp_path_factory):
    """Build the tiny model and demo suite from scratch once per test session."""
    path = tmp_path_factory.mktemp("xstilts-cache")
    os.environ["XSTILTS_CACHE"] = str(path)  # before Ray starts: workers inherit it
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    yield path
    _end_native_runtimes()


def _end_native_runtimes() -> None:
    """End the session's Ray and the AWS SDK under pytest, not in the interpreter's exit.

    Left to their ``atexit`` hooks, Ray's core worker and the AWS SDK (pyarrow's S3) are torn
    down while the interpreter finalizes, their C++ threads still running: CI's run once ended
    "570 passed" and then a segmentation fault (exit 139) with no traceback. Here they end
    while every module is alive and pytest's faulthandler still prints a crash's stacks; the
    CLI ends its own Ray the same way (``search.cli._launch``).
    """
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    if "pyarrow.fs" in sys.modules:
        import gc

        import pyarrow.fs

        gc.collect()  # the S3 filesystems nothing holds, before the SDK they use ends
        pyarrow.fs.ensure_s3_finalized()


@pytest.fixture
def ray_local(embedded_cache):
    """A local Ray in this process, started on first use and kept for the next test."""
    import ray

    from search.local_ray import ensure_ray

    # the dashboard serves the State API that frees placement groups of stopped trials
    ensure_ray(num_cpus=2, log_to_driver=False)
    yield ray


@pytest.fixture
def no_ray_here():
    """For tests whose subprocesses start their own Ray: one local Ray at a time."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    yield
