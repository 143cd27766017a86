"""Transient or permanent: the exceptions the installed hub, datasets, requests, httpx2 and
pyarrow really raise, classified; and the in-process retry around a load."""

from __future__ import annotations

import errno

import datasets
import httpx2
import pytest
import requests
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

from search.failures import is_permanent
from tests.trainables.hub_errors import hub_error
from trainables import retry
from trainables.retry import FetchError, describe, is_offline, is_transient, retry_transient


def requests_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} error", response=response)


def raised(exc: BaseException, *, cause: BaseException | None = None,
           during: BaseException | None = None, hide: bool = False) -> BaseException:
    """``exc`` as really raised: ``from cause``, while handling ``during``, or ``from None``."""
    def throw():
        if hide:
            raise exc from None
        if cause is not None:
            raise exc from cause
        raise exc

    try:
        try:
            if during is not None:
                raise during
        except BaseException:  # noqa: BLE001 - ``during`` becomes the context
            throw()
        throw()
    except BaseException as out:  # noqa: BLE001
        return out
    raise AssertionError("unreachable")


def pyarrow_network_error() -> OSError:
    """The error pyarrow's S3 filesystem raises when nothing listens at the endpoint."""
    import pyarrow.fs as pafs

    from tests.s3server import free_port

    fs = pafs.S3FileSystem(endpoint_override=f"http://127.0.0.1:{free_port()}",
                           access_key="testing", secret_key="testing", region="us-east-1",
                           connect_timeout=1, request_timeout=1,
                           retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1))
    with pytest.raises(OSError) as caught:
        fs.get_file_info("bucket/key.jsonl")
    return caught.value


TRANSIENT = {
    "hub 429": lambda: hub_error(429),
    "hub 503": lambda: hub_error(503),
    "hub 502": lambda: hub_error(502),
    "hub 408": lambda: hub_error(408),
    "requests 429": lambda: requests_error(429),
    "requests 504": lambda: requests_error(504),
    "requests ConnectionError": lambda: requests.ConnectionError("Max retries exceeded"),
    "requests ReadTimeout": lambda: requests.ReadTimeout("read timed out"),
    "httpx2 ConnectError": lambda: httpx2.ConnectError("[Errno 111] Connection refused"),
    "httpx2 ReadTimeout": lambda: httpx2.ReadTimeout("The read operation timed out"),
    "httpx2 RemoteProtocolError": lambda: httpx2.RemoteProtocolError("peer closed connection"),
    "built-in ConnectionResetError": lambda: ConnectionResetError(errno.ECONNRESET, "reset"),
    "built-in TimeoutError": lambda: TimeoutError("timed out"),
    "OSError ETIMEDOUT": lambda: OSError(errno.ETIMEDOUT, "Connection timed out"),
    "pyarrow S3 NETWORK_CONNECTION": pyarrow_network_error,
    # datasets: a hub it could not reach, as `ConnectionError(...) from LocalEntryNotFoundError`
    "datasets unreachable hub": lambda: raised(
        ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (LocalEntryNotFoundError)"),
        cause=raised(LocalEntryNotFoundError("An error happened while trying to locate the file"),
                     cause=httpx2.ConnectError("[Errno 111] Connection refused"))),
    # datasets after the hub client's own retries of a 429: FileNotFoundError `from None`,
    # the 429 under the hidden context (the shape measured against a loopback hub)
    "datasets rate-limited hub": lambda: raised(
        FileNotFoundError("Couldn't find any data file at /x. Couldn't find 'a/b' on the Hub "
                          "either: LocalEntryNotFoundError: An error happened"),
        during=raised(FileNotFoundError("Dataset a/b is not cached"),
                      during=raised(LocalEntryNotFoundError("An error happened"),
                                    cause=hub_error(429))),
        hide=True),
    # transformers: OSError("There was a specific connection error ...") from the hub's 5xx
    "transformers 500": lambda: raised(OSError("There was a specific connection error"),
                                       cause=hub_error(500)),
}

PERMANENT = {
    "hub 404 repo": lambda: hub_error(404, **{"X-Error-Code": "RepoNotFound"}),
    "hub 401": lambda: hub_error(401),
    "hub 403": lambda: hub_error(403),
    "requests 404": lambda: requests_error(404),
    "datasets DatasetNotFoundError": lambda: raised(
        datasets.exceptions.DatasetNotFoundError(
            "Dataset 'a/b' doesn't exist on the Hub or cannot be accessed."),
        cause=hub_error(404, **{"X-Error-Code": "RepoNotFound"})),
    "missing config": lambda: ValueError(
        "BuilderConfig 'nope' not found. Available: ['default']"),
    "missing split": lambda: ValueError(
        "Unknown split \"validation\". Should be one of ['train']."),
    "missing local file": lambda: FileNotFoundError("Unable to find '/data/ccg/train.en.jsonl'"),
    "offline, not cached": lambda: raised(
        ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (OfflineModeIsEnabled)"),
        cause=OfflineModeIsEnabled(
            "Cannot reach https://huggingface.co: offline mode is enabled.")),
    "local_files_only miss": lambda: LocalEntryNotFoundError(
        "Cannot find the requested files in the disk cache and outgoing traffic has been "
        "disabled."),
    "a 404 after a handled timeout": lambda: raised(
        hub_error(404, **{"X-Error-Code": "RepoNotFound"}), during=httpx2.ReadTimeout("slow")),
    "a bug": lambda: TypeError("unsupported operand"),
}


@pytest.mark.parametrize("name", TRANSIENT)
def test_connection_errors_timeouts_429_and_5xx_are_transient(name):
    exc = TRANSIENT[name]()
    assert is_transient(exc), (name, describe(exc))


@pytest.mark.parametrize("name", PERMANENT)
def test_missing_data_4xx_offline_and_bugs_are_permanent(name):
    exc = PERMANENT[name]()
    assert not is_transient(exc), (name, describe(exc))


def test_offline_mode_is_recognised_as_not_prepared():
    assert is_offline(PERMANENT["offline, not cached"]())
    assert not is_offline(TRANSIENT["datasets unreachable hub"]())


def test_describe_names_the_network_error_underneath():
    text = describe(TRANSIENT["datasets rate-limited hub"]())
    assert text.startswith("HfHubHTTPError: 429") and "(raised as FileNotFoundError)" in text
    missing = PERMANENT["datasets DatasetNotFoundError"]()  # a 404 under it says less
    assert describe(missing).startswith("DatasetNotFoundError: Dataset 'a/b' doesn't exist")


def test_is_permanent_treats_a_fetch_error_as_transient_and_data_errors_as_permanent():
    cause = ("trainables.retry.FetchError: could not fetch task 'mnli', split 'train', language "
             "'en' from nyu-mll/glue (mnli) after 3 attempts: HfHubHTTPError: 429 Too Many")
    assert is_permanent(cause) is False
    assert is_permanent("trainables.data.DataUnavailableError: could not load task 'x'") is True


class Flaky:
    """A load that fails with ``errors`` in turn, then returns "rows"."""

    def __init__(self, *errors: BaseException):
        self.errors, self.calls = list(errors), 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "rows"


@pytest.fixture
def waits(monkeypatch):
    """The waits between attempts, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(retry.time, "sleep", slept.append)
    return slept


def test_a_transient_failure_is_retried_with_growing_jittered_waits(waits):
    load = Flaky(ConnectionResetError("reset"), hub_error(503))
    assert retry_transient(load, what="x", attempts=3, backoff_s=1.0) == "rows"
    assert load.calls == 3
    assert 0.5 <= waits[0] < 1.5 and 1.0 <= waits[1] < 3.0


def test_retry_after_is_waited_out(waits):
    load = Flaky(hub_error(429, **{"Retry-After": "7"}))
    assert retry_transient(load, what="x", attempts=2, backoff_s=0.01) == "rows"
    assert waits == [7.0]


def test_a_failure_on_every_attempt_becomes_a_fetch_error_naming_what_why_and_fix(waits):
    load = Flaky(*(hub_error(429) for _ in range(3)))
    with pytest.raises(FetchError) as caught:
        retry_transient(load, what="model FacebookAI/xlm-roberta-base", fix="Do this.",
                        attempts=3, backoff_s=0.01)
    message = str(caught.value)
    assert load.calls == 3 and len(waits) == 2
    assert message.startswith("could not fetch model FacebookAI/xlm-roberta-base (3 attempts)")
    assert "429" in message and "search.max_failures" in message and message.endswith("Do this.")
    assert "\n" not in message  # one line: the trial's root cause is its last error line
    assert isinstance(caught.value.__cause__, HfHubHTTPError)


@pytest.mark.parametrize("error", [PERMANENT["missing config"], PERMANENT["hub 404 repo"],
                                   PERMANENT["offline, not cached"]])
def test_a_permanent_failure_is_raised_unchanged_at_once(error, waits):
    exc = error()
    load = Flaky(exc)
    with pytest.raises(type(exc)) as caught:
        retry_transient(load, what="x", attempts=3)
    assert caught.value is exc and load.calls == 1 and waits == []


def test_keyboard_interrupt_is_not_swallowed(waits):
    load = Flaky(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        retry_transient(load, what="x", attempts=3)
    assert load.calls == 1


def test_a_fetch_error_from_inside_is_not_retried_again(waits):
    inner = raised(FetchError("could not fetch y after 3 attempts"), cause=ConnectionError("x"))
    load = Flaky(inner)
    with pytest.raises(FetchError) as caught:
        retry_transient(load, what="x", attempts=3)
    assert caught.value is inner and load.calls == 1
