"""The edge dimension: from configuration, else a quorum of the first vectors -- never the first."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.errors import InvalidEvent
from driftline.settings import MonitorSettings
from processors.monitor import MonitorRegistry, StreamMonitor
from processors.router import Router, Source
from schemas.events import Prediction
from schemas.wire import encode

DIM = 16
SETTINGS = MonitorSettings(reference_size=60, cooldown=50)


def _edge(i: int, dim: int = DIM, version: str = "v1") -> Prediction:
    rng = np.random.default_rng(i)
    return Prediction(event_id=f"p{i}", stream_id="cam", model_version=version,
                      top_class="cat", confidence=0.9,
                      embedding=(rng.normal(size=dim) + 3.0).tolist())


def _observe(mon: StreamMonitor, events: list[Prediction]) -> list[str | None]:
    out: list[str | None] = []
    for e in events:
        try:
            mon.observe(e)
            out.append(None)
        except InvalidEvent as exc:
            out.append(exc.reason)
    return out


def test_a_wrong_length_vector_first_does_not_cost_the_good_ones():
    mon = StreamMonitor("cam", "v1", SETTINGS)
    events = [_edge(0, dim=3)] + [_edge(i) for i in range(1, 200)]
    reasons = _observe(mon, events)
    # The misfit among the voters is left out; not one good vector is refused.
    assert reasons == [None] * 200
    assert mon.embeddings.references["edge"].dim == DIM
    assert mon.snapshot().signals["edge.distance"].status == "ok"
    # After the vote, a misfit is dead-lettered.
    assert _observe(mon, [_edge(500, dim=3)]) == ["embedding_dimension"]


def test_the_majority_of_the_first_five_wins_and_later_misfits_are_refused():
    mon = StreamMonitor("cam", "v1", SETTINGS)
    lengths = [3, 3, DIM, DIM, DIM, 3, DIM]
    reasons = _observe(mon, [_edge(i, dim=n) for i, n in enumerate(lengths)])
    assert reasons == [None, None, None, None, None, "embedding_dimension", None]
    assert mon.embeddings.voted_dims["edge"] == DIM
    assert len(mon.embeddings.warmup["edge"]) == 4


@pytest.mark.parametrize("dims", [{"v1": DIM}, {"*": DIM}, {"v2": 8, "*": DIM}])
def test_a_configured_edge_dimension_refuses_a_wrong_first_vector(dims):
    settings = SETTINGS.model_copy(update={"edge_dims": dims})
    mon = StreamMonitor("cam", "v1", settings)
    reasons = _observe(mon, [_edge(0, dim=3)] + [_edge(i) for i in range(1, 100)])
    assert reasons == ["embedding_dimension"] + [None] * 99


def test_edge_dims_come_from_the_environment(monkeypatch):
    from driftline.settings import load_settings

    monkeypatch.setenv("DRIFTLINE_MONITOR__EDGE_DIMS", '{"v1": 512, "*": 256}')
    assert load_settings().monitor.edge_dims == {"v1": 512, "*": 256}


def test_through_the_router_the_good_stream_goes_on():
    router = Router(MonitorRegistry(SETTINGS))
    first = router.route(encode(_edge(0, dim=3)), Source.INPUTS)
    rest = [router.route(encode(_edge(i)), Source.INPUTS) for i in range(1, 120)]
    assert not first.rejected and not any(r.rejected for r in rest)
