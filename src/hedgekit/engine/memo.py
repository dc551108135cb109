"""``same_arrays``: a function of numpy arrays remembered for the last arrays it was given.

A sweep worker backtests the same bars trial after trial, and some figures depend on the bars
alone (the median bar range of the start checks, the periods per year of the metrics): each
is a pass over a year of bars that the next trial would redo for the same answer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import numpy as np

R = TypeVar("R")

__all__ = ["same_arrays"]


def same_arrays(fn: Callable[..., R]) -> Callable[..., R]:
    """``fn(*arrays)``, its last result given again when called with the very same array
    objects, all read-only (``Candles`` arrays are: they cannot change). The arrays are held
    by reference, so their identity cannot pass to other data while remembered."""
    last: list = []  # [arrays, result]

    @functools.wraps(fn)
    def wrapper(*arrays: np.ndarray) -> R:
        if last and len(last[0]) == len(arrays) and all(a is b for a, b in zip(last[0], arrays, strict=True)):
            return last[1]
        out = fn(*arrays)
        if all(isinstance(a, np.ndarray) and not a.flags.writeable for a in arrays):
            last[:] = [arrays, out]
        return out

    return wrapper
