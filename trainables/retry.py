"""Transient failures: what a download can get wrong for a moment, retried in-process.

Loading a dataset or a model reaches the Hugging Face hub or a storage bucket. A
dropped connection, a timeout, a rate limit (HTTP 429) or a server error (5xx)
passes: ``retry_transient`` retries such a call with exponential backoff and
jitter, and when every attempt failed it raises ``FetchError``, which the sweep
treats as transient (``search.failures.is_permanent``): Tune retries the trial
from its checkpoint (``search.max_failures``). Anything else is raised as it is
at the first attempt, since retrying would meet it again.

``is_transient`` decides, walking the exception and everything it came from
(causes and contexts): ``datasets`` and ``transformers`` wrap the network error
they met, e.g. a ``ConnectionError`` from a ``LocalEntryNotFoundError`` from an
``httpx2.ConnectError``, or, after the hub client's own retries of a 429, a
``FileNotFoundError`` raised ``from None`` while handling a
``LocalEntryNotFoundError`` from an ``HfHubHTTPError`` whose status is 429.
In this order (the first row that applies decides):

1. offline mode meeting what is not cached (``OfflineModeIsEnabled``; under
   HF_HUB_OFFLINE a ``LocalEntryNotFoundError``): **permanent**, the cache was
   not prepared;
2. an HTTP status, the one nearest the top (``HfHubHTTPError``,
   ``httpx2.HTTPStatusError``, ``requests.HTTPError``, aiohttp's
   ``ClientResponseError``, pyarrow's "HTTP status N"): 408, 429 and 5xx are
   **transient**; any other (401, 403, 404: ``RepositoryNotFoundError``,
   ``GatedRepoError``, ``DatasetNotFoundError``'s cause) **permanent**;
3. a network error anywhere: **transient**. Built-in ``ConnectionError`` and
   ``TimeoutError``; ``httpx2``/``httpx`` timeout, network, remote-protocol and
   proxy errors; ``requests`` ``ConnectionError``, ``Timeout``,
   ``ChunkedEncodingError``; aiohttp ``ClientConnectionError``,
   ``ClientPayloadError``; an ``OSError`` with a network errno (ECONNRESET,
   ETIMEDOUT, ...); pyarrow's S3/GCS errors NETWORK_CONNECTION, THROTTLING,
   SLOW_DOWN, SERVICE_UNAVAILABLE, INTERNAL_FAILURE, UNAVAILABLE,
   DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED;
4. anything else: **permanent**: a missing config (``ValueError: BuilderConfig
   … not found``) or split (``ValueError: Unknown split``), a missing file
   (``FileNotFoundError``, ``LocalEntryNotFoundError`` with no network cause).
"""

from __future__ import annotations

import errno
import functools
import logging
import random
import re
import time
from typing import Callable, Iterator, TypeVar

log = logging.getLogger("xstilts.retry")
T = TypeVar("T")

#: what a ``FetchError`` advises when nothing more specific is known
DEFAULT_FIX = ("If it persists, fill a cache where the hub is reachable (`xstilts prepare`) and "
               "set HF_HUB_OFFLINE=1 on the nodes")
#: the longest message of our load errors. Ray Train keeps only the last 500 characters of
#: a worker's traceback, and the sweep reads the error's class from its last line
#: (``search.failures.root_cause``): that line, class name first, must fit in them
MESSAGE_LIMIT = 420
#: the longest wait between two attempts, whatever a server's Retry-After asks for
MAX_WAIT_S = 60.0
#: HTTP statuses that say "not now": request timeout, too many requests, server errors
TRANSIENT_STATUS = frozenset({408, 429, *range(500, 600)})
_NETWORK_ERRNOS = frozenset({errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED,
                             errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH,
                             errno.ENETDOWN, errno.EPIPE, errno.EAGAIN})
#: pyarrow's filesystem errors carry the cloud SDK's error name in their message
_CLOUD_TRANSIENT = re.compile(
    r"AWS Error (NETWORK_CONNECTION|THROTTLING|SLOW_DOWN|SERVICE_UNAVAILABLE|INTERNAL_FAILURE)"
    r"|AWS_ERROR_S3_SLOW_DOWN|\b(UNAVAILABLE|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED):")
_CLOUD_STATUS = re.compile(r"HTTP status (\d{3})")


class FetchError(RuntimeError):
    """A download failed on every in-process attempt, for a reason that passes (a dropped
    connection, a timeout, a rate limit, a server error): the trial is retried later."""


def retry_transient(fn: Callable[[], T], *, what: str, fix: str = DEFAULT_FIX,
                    attempts: int = 3, backoff_s: float = 1.0) -> T:
    """``fn()``, retried while it fails for a transient reason.

    Args:
        fn: the load, e.g. ``lambda: AutoModel.from_pretrained(path)``.
        what: what is fetched, for messages ("model FacebookAI/xlm-roberta-base").
        fix: what to do when it keeps failing, appended to the ``FetchError`` message.
        attempts: calls in all (at least 1).
        backoff_s: the wait before the second call; it doubles after each failure,
            times a random factor in [0.5, 1.5) so that workers do not retry in step.
            A server's ``Retry-After`` (429, 503) is waited out if longer (at most
            ``MAX_WAIT_S``).

    Raises:
        FetchError: every attempt failed transiently; chained to the last error.
        Exception: the first error that is not transient, unchanged.
    """
    attempts = max(1, attempts)
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below; BaseException passes
            if not is_transient(exc):
                raise
            if attempt >= attempts:
                tries = f"{attempts} attempt" + ("s" if attempts > 1 else "")
                raise FetchError(message(
                    f"could not fetch {what} ({tries})", exc,
                    f"Transient: the trial is retried (search.max_failures). {fix}")) from exc
            wait = min(MAX_WAIT_S, max(backoff_s * 2 ** (attempt - 1) * random.uniform(0.5, 1.5),
                                       _retry_after(exc)))
            log.warning("fetching %s failed (%s); attempt %d of %d in %.1f s", what,
                        describe(exc), attempt + 1, attempts, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")  # the loop returns or raises


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure that may pass if the same call is made again (see the
    module docstring); a ``FetchError`` is not: it was retried already."""
    if isinstance(exc, FetchError) or is_offline(exc):
        return False
    links = list(_chain(exc))
    status = next((s for s in map(status_of, links) if s is not None), None)
    if status is not None:  # the server answered: its answer decides
        return status in TRANSIENT_STATUS
    return any(_transient_link(link) for link in links)


def is_offline(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the hub's offline mode (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE)
    meeting something that is not in the local cache."""
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    # transformers in offline mode: a LocalEntryNotFoundError (local_files_only) under its OSError
    offline_miss = (LocalEntryNotFoundError,) if constants.is_offline_mode() else ()
    return any(isinstance(link, (OfflineModeIsEnabled, *offline_miss))
               or "OfflineModeIsEnabled" in str(link) or "offline mode is enabled" in str(link)
               for link in _chain(exc))


def describe(exc: BaseException) -> str:
    """``Type: first line`` of ``exc``, or of the transient error underneath it (a 429
    that ``datasets`` raised as a ``FileNotFoundError``), which says more."""
    inner = next((link for link in _chain(exc)
                  if _transient_link(link) or status_of(link) in TRANSIENT_STATUS), exc)
    if inner is exc:
        return _one_line(exc)
    return f"{_one_line(inner)} (raised as {type(exc).__name__})"


def message(head: str, exc: BaseException, tail: str) -> str:
    """``head: <exc described>. tail`` on one line of at most ``MESSAGE_LIMIT`` characters;
    the description is what gets shortened."""
    room = max(60, MESSAGE_LIMIT - len(head) - len(tail) - 4)
    text = describe(exc)
    text = text if len(text) <= room else text[:room - 1] + "…"
    return f"{head}: {text}. {tail}"[:MESSAGE_LIMIT]


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an error carries (its response's, or named in its message), if any."""
    response = getattr(exc, "response", None)
    for holder, name in ((response, "status_code"), (response, "status"), (exc, "status"),
                         (exc, "status_code")):
        value = getattr(holder, name, None) if holder is not None else None
        if isinstance(value, int):
            return value
    found = _CLOUD_STATUS.search(str(exc)) if isinstance(exc, OSError) else None
    return int(found.group(1)) if found else None


def _transient_link(exc: BaseException) -> bool:
    """Whether ``exc`` itself is a network failure (a dropped connection, a timeout)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError) and (exc.errno in _NETWORK_ERRNOS
                                     or _CLOUD_TRANSIENT.search(str(exc))):
        return True
    return isinstance(exc, _library_transients())


#: the network errors of the HTTP clients the hub, datasets and fsspec use, by module
_CLIENT_ERRORS = {
    "httpx2": ("TimeoutException", "NetworkError", "RemoteProtocolError", "ProxyError"),
    "httpx": ("TimeoutException", "NetworkError", "RemoteProtocolError", "ProxyError"),
    "requests": ("ConnectionError", "Timeout", "exceptions.ChunkedEncodingError"),
    "aiohttp": ("ClientConnectionError", "ClientPayloadError"),
}


@functools.cache
def _library_transients() -> tuple[type[BaseException], ...]:
    """The classes of ``_CLIENT_ERRORS`` whose module is installed."""
    import importlib

    found: list[type[BaseException]] = []
    for module, names in _CLIENT_ERRORS.items():
        try:
            lib = importlib.import_module(module)
        except ImportError:
            continue
        for name in names:
            obj = lib
            for part in name.split("."):
                obj = getattr(obj, part, None)
            if isinstance(obj, type) and issubclass(obj, BaseException):
                found.append(obj)
    return tuple(found)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it came from, each once: causes (``raise … from``) and
    contexts (raised while handling), also those hidden by ``from None``: ``datasets``
    turns a 429 from the hub into a ``FileNotFoundError`` raised ``from None``, with the
    429 under the context it hides."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        link = todo.pop(0)
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        todo += [e for e in (link.__cause__, link.__context__) if e is not None]


def _retry_after(exc: BaseException) -> float:
    """The seconds a server asked to wait (``Retry-After``) in any link of ``exc``; 0 if none."""
    for link in _chain(exc):
        headers = getattr(getattr(link, "response", None), "headers", None)
        value = headers.get("Retry-After") if headers is not None else None
        if value is None:
            continue
        try:
            return float(value)
        except ValueError:  # an HTTP date: not worth parsing for a bounded wait
            return 0.0
    return 0.0


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200].rstrip('. ')}" if lines else type(exc).__name__
