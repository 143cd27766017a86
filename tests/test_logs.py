"""The log reader the subprocess tests use to tell the project's tracebacks from Ray's shutdown."""

from tests.logs import tracebacks, unexpected_tracebacks

#: what a CI run printed when Tune stopped a finished trial's worker in the middle of a
#: garbage collection (stop 24): Ray's SIGTERM handler raised SystemExit inside a callback
PREFIX = "\x1b[36m(tune_trial pid=23208)\x1b[0m "
TEARDOWN = [
    "Exception ignored in: <function WeakSet.__init__.<locals>._remove at 0x7f0>",
    "Traceback (most recent call last):",
    '  File "/usr/lib/python3.11/_weakrefset.py", line 39, in _remove',
    "    def _remove(item, selfref=ref(self)):",
    "",
    '  File ".venv/lib/python3.11/site-packages/ray/_private/worker.py", line 1063, in sigterm_handler',
    "    raise_sys_exit_with_custom_error_message(",
    '  File "python/ray/_raylet.pyx", line 712, in ray._raylet.raise_sys_exit_with_custom_error_message',
    "SystemExit: 1",
]
OURS = [
    "Traceback (most recent call last):",
    '  File "search/cli.py", line 3, in main',
    "    run()",
    "ValueError: bad batch",
]


def test_ray_shutdown_traceback_is_told_apart_from_the_projects():
    text = "\n".join([PREFIX + ln for ln in TEARDOWN] + ["best configurations of s3://b/x"])
    assert len(tracebacks(text)) == 1 and tracebacks(text)[0][-1] == "SystemExit: 1"
    assert unexpected_tracebacks(text) == []
    with_ours = text + "\n" + "\n".join(OURS)
    assert unexpected_tracebacks(with_ours) == ["\n".join(OURS)]
    # the same traceback printed by a worker is still the project's error
    worker = "\n".join(PREFIX + ln for ln in OURS)
    assert unexpected_tracebacks(worker) == ["\n".join(OURS)]
