"""The exceptions the installed Hugging Face hub client raises for an HTTP answer, made by
its own factory (``hf_raise_for_status``): the hub itself cannot be reached from tests."""

from __future__ import annotations

import httpx2
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import hf_raise_for_status

URL = "https://huggingface.co/datasets/nyu-mll/glue/resolve/main/README.md"


def hub_error(status: int, **headers: str) -> HfHubHTTPError:
    """What the hub client raises for a response with ``status`` and ``headers`` (a 404 with
    ``X-Error-Code: RepoNotFound`` is a ``RepositoryNotFoundError``)."""
    response = httpx2.Response(status, headers=headers, request=httpx2.Request("HEAD", URL))
    try:
        hf_raise_for_status(response)
    except HfHubHTTPError as exc:
        return exc
    raise AssertionError(f"the hub client accepted HTTP {status}")
