"""float64 arrays in JSON checkpoints: little-endian bytes, base64.

Exact (a restored detector continues bit for bit) and about a third of the
size of a JSON list of floats.

>>> import numpy as np
>>> a = np.array([[0.1, -2.5], [1e-300, 3.0]])
>>> bool((unpack(pack(a), (2, 2)) == a).all())
True
>>> unpack(pack(a), (3,))
Traceback (most recent call last):
...
processors.detectors.base.StateVersionError: packed array holds 4 values, expected shape (3,)
"""

from __future__ import annotations

import base64
import math

import numpy as np

from processors.detectors.base import StateVersionError


def pack(a: np.ndarray) -> str:
    """float64 array -> base64 of its little-endian bytes."""
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f8").tobytes()).decode("ascii")


def unpack(s: str, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of ``pack``; ``StateVersionError`` when the size does not fit ``shape``."""
    a = np.frombuffer(base64.b64decode(s, validate=True), dtype="<f8")
    if a.size != math.prod(shape):
        raise StateVersionError(f"packed array holds {a.size} values, expected shape {shape}")
    return a.reshape(shape).astype(float)
