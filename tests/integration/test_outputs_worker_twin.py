"""The running worker raises the model-output alerts ``bench/bench_outputs.py`` measures in process.

A short run of ``bench/bench_outputs_worker.py`` on the session's broker: one
camera's strong confidence drop (2,000 frames, onset 1,200) as ``Prediction``
events stamped at 10 frames/s, one real ``driftline worker``, the alerts topic
read back (14–16 s, most of it the worker's start and group join). The monitor
turns its weekly budget into events with the rate it measures from the events'
``ts``, so the alerts are identical (ids, frames, every field but ``ts``) only
if the same stamps reach the worker. The full bench (2 cameras x 5 streams x
9,000 frames) is in ``bench/README.md``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bench_outputs_worker import Stream, compare, table

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ONSET = 1200


def test_worker_raises_the_in_process_output_alerts(broker: str, tmp_path: Path):
    res = compare(broker, [Stream(21, "confidence_drop_strong")], frames=2000, onset=ONSET,
                  tmp=tmp_path, in_process_first=True)
    report = table(res, ONSET)
    (drop,) = res.rows
    assert [a.signal for a in drop.firing[1]] == ["output.confidence"], report
    assert all(a.detected_frame_index is not None and a.detected_frame_index > ONSET
               for a in drop.firing[1]), report
    assert drop.identical, report + "\n" + res.log.read_text()[-3000:]
    assert not res.unknown_streams and res.metric_alerts == len(drop.worker)
