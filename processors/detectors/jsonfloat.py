"""Floats that survive ``json.dumps``/``json.loads`` exactly, infinities included.

Python writes finite floats with ``repr`` (shortest round-trip form), so they
come back bit-for-bit; but ``inf``/``nan`` would become the non-standard
tokens ``Infinity``/``NaN`` that strict JSON parsers (and other languages)
reject. Those are written as strings instead.

Examples
--------
>>> import json
>>> [load_float(v) for v in json.loads(json.dumps([dump_float(x) for x in (0.1, -math.inf)]))]
[0.1, -inf]
"""

from __future__ import annotations

import math

_SPECIAL = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def dump_float(x: float) -> float | str:
    """``x`` as a JSON-safe value: itself when finite, ``"inf"``/``"-inf"``/``"nan"`` otherwise."""
    x = float(x)
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def load_float(v: float | int | str) -> float:
    """Inverse of ``dump_float``."""
    if isinstance(v, str):
        try:
            return _SPECIAL[v]
        except KeyError:
            raise ValueError(f"not a float token: {v!r}") from None
    return float(v)
