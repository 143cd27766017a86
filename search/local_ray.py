"""Starting or joining Ray for the CLI and the tests."""

from __future__ import annotations

import os


def ensure_ray(*, num_cpus: int | None = None, include_dashboard: bool = True) -> None:
    """Join ``RAY_ADDRESS`` if set, else start a local Ray (once per process).

    The dashboard is on by default: it serves the State API that Ray Train's
    placement-group cleaner needs to free the resources of stopped trials.
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"])
        return
    ray.init(num_cpus=num_cpus, include_dashboard=include_dashboard,
             dashboard_host="127.0.0.1", configure_logging=True, logging_level="warning")
