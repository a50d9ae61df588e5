"""Medians with bootstrap confidence intervals, for benchmarks over interleaved runs."""

from __future__ import annotations

import random
import statistics


def median_ci(values: list[float], reps: int = 2000, seed: int = 0) -> dict[str, float]:
    """Median and its 95% percentile-bootstrap interval."""
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(reps))
    return {
        "median": statistics.median(values),
        "lo": meds[int(0.025 * reps)],
        "hi": meds[int(0.975 * reps) - 1],
    }


def ratio_ci(
    num: list[float], den: list[float], reps: int = 2000, seed: int = 0
) -> dict[str, float]:
    """median(num) / median(den) and its 95% bootstrap interval (each side resampled)."""
    rng = random.Random(seed)
    ratios = sorted(
        statistics.median(rng.choices(num, k=len(num)))
        / statistics.median(rng.choices(den, k=len(den)))
        for _ in range(reps)
    )
    return {
        "ratio": statistics.median(num) / statistics.median(den),
        "lo": ratios[int(0.025 * reps)],
        "hi": ratios[int(0.975 * reps) - 1],
    }
