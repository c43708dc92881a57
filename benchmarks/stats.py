"""Small statistics helpers: medians with their spread, percentiles, windowed rates."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def spread(values: Sequence[float | int | None]) -> dict[str, Any] | None:
    """Median, min, max and count of the values that are not None (None if there are none).

    >>> spread([3, 1, 2, None])
    {'median': 2, 'min': 1, 'max': 3, 'n': 3}
    """
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {
        "median": statistics.median(present),
        "min": min(present),
        "max": max(present),
        "n": len(present),
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) with linear interpolation; None for no values.

    >>> percentile([1, 2, 3, 4, 5], 50), percentile([0, 10], 99)
    (3, 9.9)
    """
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The largest number of events inside any interval ``[t, t + window)``.

    >>> max_in_window([0.0, 0.5, 0.9, 1.0, 1.2])  # [0.5, 1.5) holds four
    4
    """
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def median_of(summary: dict[str, Any] | None) -> float | None:
    """The median of a :func:`spread` result, or None."""
    return None if summary is None else summary["median"]
