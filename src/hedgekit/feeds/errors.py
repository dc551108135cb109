"""Errors raised while reading market-data files."""

from __future__ import annotations

from pathlib import Path

from hedgekit.core.errors import HedgekitError

__all__ = ["DataError"]


class DataError(HedgekitError, ValueError):
    """A history file cannot be used as it is.

    The message names the file, the 1-based data row (and column) of the first offender where
    there is one, what is wrong, and what to do about it. The same facts are kept as attributes
    so that callers can build their own report.
    """

    def __init__(
        self,
        path: str | Path | None,
        problem: str,
        *,
        row: int | None = None,
        column: str | None = None,
        where: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.problem = problem
        self.row = row
        self.column = column
        self.hint = hint
        place = [str(path) if path is not None else "<data>"]
        if where is not None:
            place.append(where)
        elif row is not None:
            place.append(f"row {row}")
        if column is not None:
            place.append(f"column {column!r}")
        message = f"{', '.join(place)}: {problem}"
        if hint:
            message += f". {hint[:1].upper()}{hint[1:]}"
        super().__init__(message)
