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


@pytest.fixture(scope="session")
def ray_local(embedded_cache):
    import ray

    # the dashboard serves the State API that frees placement groups of stopped trials
    ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False)
    yield ray
    ray.shutdown()
