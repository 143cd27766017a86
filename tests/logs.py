"""Reading what a sweep's subprocess printed: its tracebacks, told apart from Ray's shutdown noise."""

from __future__ import annotations

import re

#: the prefix Ray puts on a line a worker printed, e.g. ``\x1b[36m(tune_trial pid=23208)\x1b[0m ``
RAY_PREFIX = re.compile(r"^(?:\x1b\[\d+m)?\([^()]*pid=\d+[^()]*\)(?:\x1b\[0m)? ?")


def tracebacks(text: str) -> list[list[str]]:
    """Every traceback in ``text``, as its lines without Ray's worker prefix, ending at the
    exception's line (the first line after the header that is not indented)."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for raw in text.splitlines():
        line = RAY_PREFIX.sub("", raw)
        if line.startswith("Traceback (most recent call last)"):
            if current:
                blocks.append(current)
            current = [line]
        elif current is not None:
            current.append(line)
            if line.strip() and not line[0].isspace():
                blocks.append(current)
                current = None
    if current:
        blocks.append(current)
    return blocks


def is_ray_teardown(block: list[str]) -> bool:
    """A worker Ray stopped with SIGTERM while it ran Python code (a garbage collector's
    callback, say) at shutdown: Ray's handler raises ``SystemExit`` and the interpreter
    prints it as an ignored exception. Not the project's error: the trial had finished."""
    return block[-1].startswith("SystemExit") and any("sigterm_handler" in ln for ln in block)


def unexpected_tracebacks(text: str) -> list[str]:
    """The tracebacks in ``text`` other than Ray's shutdown ones, each joined into one string."""
    return ["\n".join(b) for b in tracebacks(text) if not is_ray_teardown(b)]
