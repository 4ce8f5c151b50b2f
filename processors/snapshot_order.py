"""Which of two snapshots of one stream is newer: by the input positions they cover.

A restore keeps one snapshot per stream from the state topic. "The last one
written" is wrong when a worker expelled from its group (a *zombie*: frozen
past its session timeout while another worker took its partitions, then
thawed) writes the snapshots of the batch it was holding *after* the new
owner's: measured with ``bench/bench_zombie.py``, such a stale snapshot
(covering 36-37 events) landed after ones covering 75-100 in 2 of 4 runs, and
a restore in between installed it, applying the events between them again.

Every snapshot the worker writes carries the input positions it covers in a
``driftline-positions`` header (``positions_header``); a monitor's positions
only grow. A restore keeps a later record of a key unless it is *behind* the
one kept (``is_behind``: no position ahead, one at least behind). Records
without the header (older builds) keep "the last one written".

Not covered: the state topic is compacted, and compaction keeps the last
record of a key, so a stale snapshot written last survives compaction if the
owner writes none after it; the owner's next snapshot of that stream (every
``STATE_EVERY`` events, or at its next event after the timer) replaces it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

POSITIONS_HEADER = "driftline-positions"


def positions_header(positions: Mapping[str, int]) -> dict[str, bytes]:
    """The headers a snapshot carries: its monitor's input positions as JSON.

    >>> positions_header({"acme.predictions:0": 41})
    {'driftline-positions': b'{"acme.predictions:0":41}'}
    """
    return {POSITIONS_HEADER: orjson.dumps(dict(positions))}


def positions_of(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, int] | None:
    """The positions in a record's headers; None without the header or when unreadable.

    >>> positions_of([("driftline-positions", b'{"t:0": 5}')])
    {'t:0': 5}
    >>> positions_of(None), positions_of([("driftline-positions", b"[1]")])
    (None, None)
    """
    for name, value in headers or ():
        if name != POSITIONS_HEADER or not value:
            continue
        try:
            parsed: Any = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        if isinstance(parsed, dict) and all(
                isinstance(k, str) and isinstance(v, int) for k, v in parsed.items()):
            return parsed
        return None
    return None


def is_behind(new: Mapping[str, int] | None, kept: Mapping[str, int] | None) -> bool:
    """Whether a snapshot covering ``new`` is older than one covering ``kept``.

    True only when both are known, ``new`` is ahead nowhere and behind
    somewhere (a position missing counts as -1). Equal positions are not
    behind: an operator command snapshots a stream without new input.

    >>> is_behind({"t:0": 36}, {"t:0": 100}), is_behind({"t:0": 100}, {"t:0": 36})
    (True, False)
    >>> is_behind({"t:0": 50}, {"t:0": 50}), is_behind({"t:0": 9, "u:0": 3}, {"t:0": 10})
    (False, False)
    >>> is_behind(None, {"t:0": 10}), is_behind({"t:0": 1}, None)
    (False, False)
    """
    if new is None or kept is None:
        return False
    keys = set(new) | set(kept)
    if any(new.get(k, -1) > kept.get(k, -1) for k in keys):
        return False
    return any(new.get(k, -1) < kept.get(k, -1) for k in keys)
