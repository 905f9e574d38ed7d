"""What the benchmark scripts share: timing one action, and a line of figures for a series."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(action: Callable[[], object]) -> float:
    """Seconds `action()` took."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def summary(name: str, seconds: list[float], target: str = "", *, width: int = 62) -> str:
    """`name`, then the median and range of `seconds` in milliseconds, and the target if any."""
    ms = sorted(s * 1000 for s in seconds)
    line = f"{name:<{width}} median {statistics.median(ms):8.1f} ms   min-max {ms[0]:7.1f}-{ms[-1]:7.1f} ms"
    return line + (f"   target {target}" if target else "")
