"""What happens when a trial fails, in one place.

A trial's failure is told by its root cause, one ``SomethingError: message`` line
(``root_cause``). A permanent one (``is_permanent``: bad numbers, bad data, bad config,
bugs) is marked beside the trial's Train run (``write_failure``), so a retry Tune makes
reports it at once instead of training again (``read_failure``); anything else (CUDA out
of memory, a lost node, I/O, a ``FetchError``) is transient and Tune retries the trial
from its checkpoint, up to ``search.max_failures`` times. A full storage is neither: the
driver stops the sweep (``trainables.storage.StorageFullError``,
``search.results.ResultsWriter``) and no trial is recorded as failed for it.
"""

from __future__ import annotations

from search.tables import read_text, write_atomic


#: errors a retry would meet again: bad numbers, bad data (``DataUnavailableError``: a
#: missing dataset, config, split or file, offline without a cache), bad config, bugs
PERMANENT = ("FloatingPointError", "ValueError", "KeyError", "TypeError", "IndexError",
             "ConfigError", "DataUnavailableError", "FileNotFoundError", "NotImplementedError",
             "UnsafeCheckpointError")
#: errors that say they may pass: ``FetchError`` (``trainables.retry``) is a download that
#: failed on every in-process attempt for a passing reason (connection, timeout, HTTP 429/5xx)
TRANSIENT = ("FetchError",)


def is_permanent(cause: str) -> bool:
    """Whether a trial's root cause is one that retrying from a checkpoint cannot fix.

    Anything else (CUDA out of memory, a lost node or worker, I/O, a ``FetchError``) is
    transient: Tune retries the trial (``search.max_failures``) and it continues from its
    checkpoint.
    """
    head = cause.split(":", 1)[0].rsplit(".", 1)[-1].strip()
    return head in PERMANENT and head not in TRANSIENT


def root_cause(exc: BaseException) -> str:
    """``SomethingError: message`` of what failed a trial: the exception of the lowest
    failed rank where Ray Train keeps it (``WorkerGroupError.worker_failures``: its
    formatted error keeps only the traceback's last 500 characters, which can cut a long
    message's class name), else the last such line of the error's text, or its last line."""
    failures = getattr(exc, "worker_failures", None)
    if failures:
        first = failures[min(failures)]
        kind = type(first)
        name = kind.__qualname__ if kind.__module__ == "builtins" else \
            f"{kind.__module__}.{kind.__qualname__}"  # as a traceback names it
        return f"{name}: {str(first).strip()}"[:2000]
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error:" in ln.split(" ")[0] or ln.split(":")[0].endswith("Error")]
    return (errors[-1] if errors else lines[-1] if lines else type(exc).__name__)[:2000]


FAILURE_FILE = "xstilts-failed.txt"


def write_failure(run_dir: str, cause: str) -> None:
    """Mark a Train run as failed for good, so a retry reports the cause without training."""
    write_atomic(f"{run_dir}/{FAILURE_FILE}", cause.encode())


def read_failure(run_dir: str) -> str | None:
    return read_text(f"{run_dir}/{FAILURE_FILE}")


def error_text(trial) -> str:
    """``root_cause`` of a Tune trial that ended in an error, from its error or error file."""
    try:
        err = trial.get_error()
    except Exception:  # noqa: BLE001 - an unreadable error must not lose the row
        err = None
    if err is not None:
        return root_cause(err)
    path = getattr(trial, "error_file", None)
    if path:
        try:
            with open(path) as f:
                return root_cause(Exception(f.read()))
        except OSError:
            pass
    return "trial failed (no error text recorded)"
