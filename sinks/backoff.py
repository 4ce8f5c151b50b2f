"""The one retry backoff of the sinks: exponential with full jitter.

Full jitter (a uniform draw below the exponential cap) spreads the retries of
many clients that failed together, instead of having them retry in lockstep.

Examples
--------
>>> 0 <= full_jitter(3, base_s=0.1, max_s=5.0) <= 0.4
True
>>> full_jitter(30, base_s=0.5, max_s=2.0) <= 2.0
True
"""

from __future__ import annotations

import random


def full_jitter(attempt: int, *, base_s: float = 0.1, max_s: float = 5.0) -> float:
    """Seconds before retry ``attempt`` (1-based): ``uniform(0, min(max, base * 2**(a-1)))``."""
    return random.uniform(0, min(max_s, base_s * 2 ** max(0, attempt - 1)))
