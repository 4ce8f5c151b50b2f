"""The HTTP API over real HTTP: uvicorn on a free port, a real Redis and broker.

The data is what a real monitor emitted, written to Redis by the real sinks
(``api_data`` in ``tests/conftest.py``); controls posted to the API are read
back from the control topic and verified as the worker verifies them. The
served OpenAPI document must equal the committed ``docs/openapi.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from driftline.api import ApiServer
from driftline.cli_api import openapi_document
from processors.commands import ControlAuth
from schemas.events import Command
from schemas.wire import decode_as
from tests.integration.processes import terminate

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "api-test-token-0123456789"
SECRET = "api-test-control-secret"
STREAM, SIGNAL = "cam-api", "output.confidence"


@pytest.fixture
def served(api_data):
    settings = api_data.settings.model_copy(update={
        "control_secret": SecretStr(SECRET),
        "api": api_data.settings.api.model_copy(update={"token": SecretStr(TOKEN), "port": 0})})
    with ApiServer(settings) as server:
        yield server, api_data, settings


def test_the_api_serves_the_fleet_a_stream_its_alerts_and_publishes_signed_controls(
    served, read_topic
) -> None:
    server, data, settings = served
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/api/v1/streams").status_code == 401
        assert http.get("/api/v1/streams", headers={"Authorization": "Bearer nope"}
                        ).status_code == 401
        assert http.get("/healthz").json() == {"status": "ok"}

        fleet = http.get("/api/v1/streams", headers=auth).json()
        assert fleet["total"] == 1
        (cam,) = fleet["streams"]
        assert (cam["stream_id"], cam["status"], cam["signals_in_drift"]) == (
            STREAM, "drift", [SIGNAL])
        assert cam["last_alert"]["alert_id"] == data.alert_ids[-1]
        # Lifecycles and controls as the sinks mirrored them (no control applied here).
        assert (cam["last_alert"]["lifecycle"], cam["open_alerts"]) == (
            "firing", len(data.alert_ids))
        assert (cam["snoozed"], cam["disabled_signals"]) == ({}, [])
        assert cam["last_event_ts"] is not None

        stream = http.get(f"/api/v1/streams/{STREAM}", headers=auth).json()
        sig = next(s for s in stream["signals"] if s["signal"] == SIGNAL)
        assert len(sig["series"]) == data.snapshots  # one point per snapshot, none twice
        indices = [p["index"] for p in sig["series"]]
        assert indices == sorted(indices) and indices[-1] == 299
        calibrated = [p for p in sig["series"] if p["threshold"] is not None]
        assert calibrated and all(p["tolerance"] > 0 and p["baseline"] is not None
                                  for p in calibrated)
        assert [c["alert_id"] for c in sig["change_points"]] == data.alert_ids
        assert sig["change_points"][0]["change_index"] == 186  # the EWMA's lag: shift at 140
        assert (sig["snoozed_until"], sig["disabled"], stream["controls"]) == (None, False, [])
        assert {a["lifecycle"] for a in stream["recent_alerts"]} == {"firing"}

        one = http.get(f"/api/v1/streams/{STREAM}/signals/{SIGNAL}?points=10",
                       headers=auth).json()
        assert len(one["series"]) == 10 and one["series"][-1]["index"] == 299
        assert http.get(f"/api/v1/streams/{STREAM}/signals/nope", headers=auth
                        ).status_code == 404
        assert http.get("/api/v1/streams/nope", headers=auth).status_code == 404

        timeline = http.get("/api/v1/alerts", headers=auth).json()["alerts"]
        assert [a["alert_id"] for a in timeline] == data.alert_ids[::-1]
        detail = http.get(f"/api/v1/alerts/{data.alert_ids[0]}", headers=auth).json()
        assert (detail["alert"]["signal"], detail["lifecycle"]) == (SIGNAL, "firing")
        stored = [f for f in detail["frames_before"] + detail["frames_after"] if f["url"]]
        assert [f["frame_id"] for f in stored] == ["p185"]  # before the change point, 186
        assert "1 of 3 example frames" in detail["frames_note"]
        frame = http.get(stored[0]["url"], headers=auth)
        assert frame.content.startswith(b"\xff\xd8") and frame.status_code == 200
        assert http.get(f"/api/v1/frames/{STREAM}/..", headers=auth).status_code == 404
        assert http.get("/api/v1/alerts/nope", headers=auth).status_code == 404

        posted = []
        for action, body in [
            ("snooze", {"signals": [SIGNAL], "for_s": 7200, "reason": "lens cleaning"}),
            ("ack", {"signals": [SIGNAL], "alert_id": data.alert_ids[0], "by": "alice"}),
            ("rereference", {}), ("unsnooze", {}), ("disable", {"signals": [SIGNAL]}),
            ("enable", {"signals": [SIGNAL]}), ("set-budget", {"false_alarms_per_week": 2.5}),
        ]:
            res = http.post(f"/api/v1/streams/{STREAM}/{action}", json=body, headers=auth)
            assert res.status_code == 202, res.text
            assert res.json()["signed"] is True
            posted.append(res.json()["command_id"])
        assert http.post(f"/api/v1/streams/{STREAM}/snooze", json={}, headers=auth
                         ).status_code == 422
        bad = http.post(f"/api/v1/streams/{STREAM}/disable", json={"signals": ["nope"]},
                        headers=auth)
        assert bad.status_code == 422 and "unknown signal" in bad.text
        assert http.post(f"/api/v1/streams/{STREAM}/set-budget", json={}, headers=auth
                         ).status_code == 422
        assert http.post(f"/api/v1/streams/{STREAM}/rereference", json={}).status_code == 401

        acked = http.get(f"/api/v1/streams/{STREAM}/signals/{SIGNAL}", headers=auth).json()
        assert (acked["ack"]["by"], acked["ack"]["command_id"]) == ("alice", posted[1])

        metrics = http.get("/metrics").text
        assert 'driftline_api_controls_total{action="snooze"}' in metrics
        assert http.get("/").text.startswith("<!doctype html>")
        assert "uPlot" in http.get("/static/vendor/uPlot.iife.min.js").text[:2000]

        served_doc = http.get("/openapi.json").json()

    records = read_topic(settings.topics.control, len(posted), timeout_s=20)
    commands = [decode_as(Command, r.value) for r in records]
    assert sorted(c.command_id for c in commands) == sorted(posted)
    verifier = ControlAuth(SECRET)
    for c in commands:
        verifier.verify(c)  # signed with the control secret, fresh, each once
    assert {r.key for r in records} == {STREAM.encode()}
    by_action = {c.action: c for c in commands}
    snooze = by_action["snooze"]
    assert (snooze.signals, snooze.reason, snooze.requested_by) == (
        [SIGNAL], "lens cleaning", "api")
    assert 7100 < (snooze.until - snooze.ts).total_seconds() <= 7200
    assert by_action["ack"].alert_id == data.alert_ids[0]
    assert by_action["set_budget"].false_alarms_per_week == 2.5

    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert served_doc == committed, "regenerate: driftline api --write-openapi docs/openapi.json"
    assert json.loads(openapi_document()) == committed


def test_without_a_token_the_api_refuses_to_listen_beyond_loopback(settings) -> None:
    from driftline.errors import ConfigError

    wide = settings.model_copy(update={"api": settings.api.model_copy(update={
        "host": "0.0.0.0"})})
    with pytest.raises(ConfigError, match="DRIFTLINE_API__TOKEN"):
        ApiServer(wide)


def test_driftline_api_prints_its_ready_line_and_serves(settings) -> None:
    import subprocess
    import sys

    from typer.testing import CliRunner

    from driftline.cli import app
    from driftline.errors import ConfigError
    from driftline.local_infra import settings_env

    env = settings_env(settings)
    wide = CliRunner().invoke(app, ["api", "--host", "0.0.0.0"], env=env)
    assert isinstance(wide.exception, ConfigError)  # `driftline` prints it, exit code 2
    assert str(wide.exception).startswith("DRIFTLINE_API__TOKEN: required to listen on")
    proc = subprocess.Popen([sys.executable, "-m", "driftline", "api", "--port", "0"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not any("ready" in line for line in lines):
            line = proc.stderr.readline() if proc.stderr else ""
            assert line, f"exited {proc.poll()}: {lines}"
            lines.append(line)
        url = lines[-1].split("ready: ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        assert any("has no token" in line for line in lines)  # the warning, once
        assert httpx.get(url + "healthz", timeout=10).json() == {"status": "ok"}
    finally:
        assert terminate(proc) == [0]
