"""One error hierarchy: every failure a user can hit is a `CurateError` with an actionable message."""

from __future__ import annotations


class CurateError(Exception):
    """Base of every error curate raises on purpose. The CLI prints it without a traceback."""

    exit_code = 1


class RowReject(Exception):
    """One row (or one rendering of it) that becomes a reject with ``reason`` and ``detail``.

    Not a :class:`CurateError`: the run goes on and the row is accounted for in ``rejects``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class RecipeError(CurateError):
    """The recipe (or a `--set` override, or stage params) is invalid. Raised before any work."""

    exit_code = 2


class InputFileError(CurateError):
    """A source file is missing, unreadable, or not parseable at all (names path, line, column)."""

    exit_code = 3


class UnknownFormatError(InputFileError):
    """`format: auto` could not tell which family a file belongs to."""


class StageError(CurateError):
    """A stage was misconfigured or could not run (unknown name, bad params)."""

    exit_code = 2


class RunDirError(CurateError):
    """The run directory cannot be written, or exists and would be overwritten without --force."""

    exit_code = 4


class TemplateError(CurateError):
    """A template file is invalid, references a missing field, or tries to escape the sandbox."""

    exit_code = 2


class ExportError(RunDirError):
    """A run cannot be exported (not a run, incomplete, bad format) or pushed to the Hub."""

    exit_code = 1
