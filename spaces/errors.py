"""The error for a name the user gave that xstilts does not know."""

from __future__ import annotations


class UnknownNameError(KeyError):
    """A task, language, model size, preset, trial or column name that is not known; the
    message names it and lists the known ones. A ``KeyError`` (a failed lookup) whose
    message prints unquoted: the command line shows it as bad input (exit code 2), while
    a plain ``KeyError`` is a bug and keeps its traceback."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
