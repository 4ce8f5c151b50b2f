"""Warm-up checks: a reference that contains a change, and signals a stream never feeds.

A signal calibrates its detector on its first ``reference_size`` values.
Two things can go wrong there without anyone noticing:

- **The reference contains a change.** A camera bumped, or a lens smudged,
  during the warm-up: the reference spans two regimes, its spread (and so
  the detector's threshold) comes out several times that of a clean
  reference, and changes of that size go unseen. ``ReferenceCheck`` runs a
  change-point test on the buffer the signal is about to calibrate on: the
  best split into two segments (each at least ``MIN_SEGMENT`` of it) whose
  medians differ by more than ``REFERENCE_STEP`` times the segments' pooled
  robust spread. A hit is a *warning* alert (detector ``reference_check``)
  and the signal's status becomes ``suspect_reference`` until it calibrates
  again (``driftline rereference``, or after its next alert).
- **The stream never feeds the signal.** ``edge.*`` on a stream without edge
  embeddings, ``output.boxes`` on a classifier, ``performance.*`` without
  labels: after ``reference_size`` events of the stream without one value,
  the signal is ``not_seen``, not ``warming_up`` forever.

Threshold: on 20 simulated references (5 scenes x clean / brightness / blur /
colour cast injected at frame 120 of the warm-up), the statistic of clean
references reached 8.1 (``quality.contrast``; tile signals, which reached
10.8, are not checked); every injected change gave at least one signal above
12 (brightness 13-121, blur 57-362, colour cast 14-82 on the signals it moves).
Embedding signals calibrate on the 200 events after their PCA warm-up: a
change inside the PCA warm-up is not in their reference buffer (the quality
signals, warming up on the same frames, are what catches it).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> clean = list(rng.normal(10, 1, 200))
>>> step_statistic(clean)[0] < REFERENCE_STEP
True
>>> stepped = clean[:120] + [x + 30 for x in clean[120:]]
>>> stat, split = step_statistic(stepped)
>>> stat > REFERENCE_STEP, abs(split - 120) <= 2
(True, True)
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from processors.signal_tracker import Detection, ScalarSignal

REFERENCE_STEP = 12.0
MIN_SEGMENT = 0.1
# Signals not checked: deviations between tiles (noisy by design) and
# discrete or event-rate signals (their reference has few distinct values).
UNCHECKED_PREFIXES = ("quality.tile_",)
MIN_DISTINCT = 20
# Where the monitor keeps the id of a signal's reference-check warning
# (``StreamMonitor.last_alert_ids``, part of its checkpoint).
SUSPECT_SUFFIX = "#reference"
DETECTOR = "reference_check"
Status = Literal["warming_up", "ok", "drift", "not_seen", "suspect_reference"]


# Splits scored per numpy pass (rows x reference length elements at a time):
# bounds the memory of a long reference (``REFERENCE_SIZE`` up to 100,000).
STEP_CHUNK_ELEMENTS = 1 << 21


def _medians(rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Median of each row's first ``counts`` values; ``rows`` sorted, ``inf`` after them.

    As ``np.median``: the middle value, or the mean of the two middle ones.
    """
    r = np.arange(rows.shape[0])
    return (rows[r, (counts - 1) // 2] + rows[r, counts // 2]) / 2


def _robust(masked: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and 1.4826 x median absolute deviation of each row's finite values."""
    rows = np.sort(masked, axis=1)
    med = _medians(rows, counts)
    dev = np.sort(np.abs(masked - med[:, None]), axis=1)
    return med, 1.4826 * _medians(dev, counts)


def step_statistic(values: list[float]) -> tuple[float, int]:
    """The largest median step between two segments, in pooled robust spreads; and where.

    Every split ``k`` (each side at least ``MIN_SEGMENT`` of the values and
    5 of them): ``|median(a) - median(b)|`` over the pooled robust spread of
    ``a = values[:k]`` and ``b = values[k:]``. All splits of a chunk are scored
    in one numpy pass (sorted rows padded with ``inf``), not one median at a
    time: 1 ms instead of 14 for a 200-value reference, run for every signal
    of every stream whose reference fills -- on the worker's event loop, where
    100 streams warming up together stalled it for seconds (bench_warmup).
    The same floats as a loop of ``np.median`` calls, operation for operation.

    >>> stat, split = step_statistic([0.0, 1.0] * 15 + [10.0, 11.0] * 15)
    >>> round(stat, 2), split
    (13.49, 30)
    >>> step_statistic([0.0, 1.0] * 30)  # no step: no split scores above 0
    (0.0, 0)
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    lo = max(5, int(n * MIN_SEGMENT))
    best, where = 0.0, 0
    ks = np.arange(lo, n - lo + 1)
    col = np.arange(n)[None, :]
    step = max(1, STEP_CHUNK_ELEMENTS // max(n, 1))
    for at in range(0, ks.size, step):
        k = ks[at:at + step]
        before = col < k[:, None]
        ma, sa = _robust(np.where(before, x, np.inf), k)
        mb, sb = _robust(np.where(before, np.inf, x), n - k)
        spread = np.sqrt((k * sa * sa + (n - k) * sb * sb) / n)
        with np.errstate(divide="ignore", invalid="ignore"):
            stat = np.where(spread > 0.0, np.abs(ma - mb) / spread, -np.inf)
        i = int(np.argmax(stat))
        if stat[i] > best:  # the first split of the largest, as a loop keeping ">" finds
            best, where = float(stat[i]), int(k[i])
    return best, where


class ReferenceCheck:
    """Tests the buffer each signal calibrates on (see the module's docstring)."""

    @staticmethod
    def pending(sig: ScalarSignal, value: float) -> list[float] | None:
        """The reference ``sig`` calibrates on if fed ``value`` now, or None.

        Call before ``sig.update(value, ...)``; the signal clears its buffer
        when it calibrates.
        """
        if (sig.detector is not None or sig.skip > 0
                or len(sig.reference) != sig.reference_size - 1
                or sig.name.startswith(UNCHECKED_PREFIXES)):
            return None
        return [*sig.reference, value]

    @staticmethod
    def check(sig: ScalarSignal, reference: list[float], index: int,
              marks: dict[str, str]) -> Detection | None:
        """After ``sig`` calibrated on ``reference`` at stream index ``index``: a warning or None.

        ``marks`` (the monitor's ``last_alert_ids``) loses the signal's
        suspect mark when its new reference is clean.
        """
        marks.pop(sig.name + SUSPECT_SUFFIX, None)
        # A deferred signal calibrated as far as this check goes: its request waits.
        if (sig.detector is None and sig.calibration is None) or len(set(reference)) < MIN_DISTINCT:
            return None
        stat, split = step_statistic(reference)
        if stat <= REFERENCE_STEP:
            return None
        before = float(np.median(reference[:split]))
        after = float(np.median(reference[split:]))
        indices = list(sig.indices)
        back = len(reference) - split
        change = indices[-back] if back <= len(indices) else index
        return Detection(
            signal=sig.name,
            detector=DETECTOR,
            statistic=stat,
            threshold=REFERENCE_STEP,
            expected=before,
            observed=after,
            detected_index=index,
            change_index=change,
            reference_scale=float("nan"),
            note=(f"the reference this signal just calibrated on contains a change: its "
                  f"median moved from {before:.4g} to {after:.4g} within it ({stat:.0f}x the "
                  f"spread within each part; see change_frame_index), so its threshold is too wide "
                  f"to see changes of that size; re-reference once the scene is stable "
                  f"(driftline rereference STREAM --signal {sig.name})"),
        )


def signal_status(sig: ScalarSignal, events_seen: int, reference_size: int,
                  marks: dict[str, str]) -> Status:
    """A signal's status for the state: its own, or ``not_seen`` / ``suspect_reference``.

    >>> s = ScalarSignal("edge.distance", "cusum", ert=1e4, reference_size=50, cooldown=10,
    ...                  seed=1)
    >>> signal_status(s, 10, 50, {}), signal_status(s, 50, 50, {})
    ('warming_up', 'not_seen')
    """
    if sig.updates == 0 and events_seen >= reference_size:
        return "not_seen"
    if sig.status == "ok" and sig.name + SUSPECT_SUFFIX in marks:
        return "suspect_reference"
    return sig.status
