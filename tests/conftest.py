"""Shared fixtures: a local Ray for the whole session and a fresh embedded cache."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def embedded_cache(tmp_path_factory):
    """Build the tiny model and demo suite from scratch once per test session."""
    path = tmp_path_factory.mktemp("xstilts-cache")
    os.environ["XSTILTS_CACHE"] = str(path)  # before Ray starts: workers inherit it
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    return path


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
