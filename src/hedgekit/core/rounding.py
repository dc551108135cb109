"""``round(x, places)`` bit for bit, without its cost on the values a backtest rounds.

``round(x, places)`` on a float is correctly rounded decimal arithmetic (CPython converts to a
decimal string and back): about 0.3 us a call, and the fast path rounds every price, size and
position it computes (tens of thousands of calls a trial). Those values lie next to a multiple
of ``10**-places``, where the same float costs a multiply, a truncation and a division.
Anything else (a value near half a step, a huge one, nan) takes ``round()`` itself.

Why it is exact: with ``s = 10**places`` (exact as a float for places <= 22), ``y = fl(x * s)``
and ``k`` the integer nearest to ``y``: ``|y| < 2**50`` bounds the product's error by
``|x*s| * 2**-53 < 0.13``, so ``|y - k| < 0.25`` gives ``|x*s - k| < 0.5``. Then ``x`` rounded
to ``places`` decimals is the decimal ``k / s``, whose nearest float is ``k / s`` computed in
floats (``k`` and ``s`` exact, IEEE division correctly rounded): what ``round(x, places)``
returns. A zero keeps the sign of ``x``, as ``round()`` does. Checked against ``round()`` in
tests/test_rounding.py. Compiled with the hot path (tools/build_compiled.py).
"""

from __future__ import annotations

from typing import Final

_Y_MAX: Final = 2.0**50
_SCALES: Final = tuple(10.0**p for p in range(23))  # exact powers of ten


def round_places(x: float, places: int) -> float:
    """``round(x, places)``, the same float."""
    if 0 <= places < len(_SCALES):
        scale = _SCALES[places]
        y = x * scale
        if -_Y_MAX < y < _Y_MAX:  # False for nan and inf too
            # The nearest integer, as a float (a tie is rejected below whichever way it went).
            k = float(int(y + 0.5)) if y >= 0.0 else float(int(y - 0.5))
            if -0.25 < y - k < 0.25:
                return k / scale if k != 0.0 else x * 0.0
    return round(x, places)
