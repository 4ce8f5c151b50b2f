"""``step_statistic`` (the warm-up reference check) vectorised: the loop's floats, bit for bit.

The check decides whether a ``suspect_reference`` warning fires and carries
its statistic in the alert, so the vectorised form must give exactly what
the loop of ``np.median`` calls gave (it replaced it: 14x faster), ties,
constant segments and long references (chunked) included.
"""

from __future__ import annotations

import numpy as np
import pytest

import processors.monitor.warmup_checks as wc


def loop_step_statistic(values: list[float]) -> tuple[float, int]:
    """The former implementation, one split at a time."""
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    lo = max(5, int(n * wc.MIN_SEGMENT))
    best, where = 0.0, 0
    for k in range(lo, n - lo + 1):
        a, b = x[:k], x[k:]
        ma, mb = float(np.median(a)), float(np.median(b))
        sa = 1.4826 * float(np.median(np.abs(a - ma)))
        sb = 1.4826 * float(np.median(np.abs(b - mb)))
        spread = float(np.sqrt((k * sa * sa + (n - k) * sb * sb) / n))
        if spread <= 0.0:
            continue
        stat = abs(ma - mb) / spread
        if stat > best:
            best, where = stat, k
    return best, where


def _cases() -> list[list[float]]:
    rng = np.random.default_rng(7)
    out: list[list[float]] = [[], [1.0] * 9, [1.0] * 50, [0.0, 1.0] * 30]
    for i in range(60):
        n = int(rng.integers(10, 300))
        x = rng.normal(size=n)
        if i % 4 == 1:
            x = np.round(x * 2) / 2  # ties
        elif i % 4 == 2:
            x[n // 2:] += 3.0  # a step
        elif i % 4 == 3:
            x = rng.integers(0, 3, n).astype(float)  # few distinct values
        out.append(x.tolist())
    return out


@pytest.mark.parametrize("values", _cases())
def test_the_vectorised_statistic_is_the_loops_bit_for_bit(values: list[float]) -> None:
    assert wc.step_statistic(values) == loop_step_statistic(values)


def test_a_long_reference_is_scored_in_chunks_with_the_same_result(monkeypatch) -> None:
    x = np.random.default_rng(3).normal(size=400)
    x[250:] += 1.0
    whole = wc.step_statistic(x.tolist())
    monkeypatch.setattr(wc, "STEP_CHUNK_ELEMENTS", 400 * 7)  # 7 splits per pass
    assert wc.step_statistic(x.tolist()) == whole == loop_step_statistic(x.tolist())
    assert 230 <= whole[1] <= 270
