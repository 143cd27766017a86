"""Starting or joining Ray for the CLI and the tests."""

from __future__ import annotations

import os
import socket


def ensure_ray(*, num_cpus: int | None = None, include_dashboard: bool = True, **init) -> None:
    """Join ``RAY_ADDRESS`` if set, else start a local Ray (once per process).

    The dashboard is on by default: it serves the State API that Ray Train's
    placement-group cleaner needs to free the resources of stopped trials. The
    cleaner finds that API by auto-detection, which fails when several local Ray
    instances run on one machine (a test and a CLI it launches; two users), so a
    local Ray's dashboard gets a known port, told to its workers through
    ``RAY_API_SERVER_ADDRESS`` (they inherit the environment at start-up).
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], **init)
        return
    if include_dashboard:
        port = _free_port()
        os.environ["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{port}"
        init["dashboard_port"] = port
    init.setdefault("configure_logging", True)
    init.setdefault("logging_level", "warning")
    ray.init(num_cpus=num_cpus, include_dashboard=include_dashboard,
             dashboard_host="127.0.0.1", **init)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
