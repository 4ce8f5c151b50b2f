"""Settings: defaults, environment, and start-up failures that name the setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from driftline.errors import ConfigError
from driftline.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("DRIFTLINE_"):
            monkeypatch.delenv(name)


def test_environment_is_read_with_nested_groups(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_TOPIC_PREFIX", "acme")
    monkeypatch.setenv("DRIFTLINE_MONITOR__ERT", "20000")
    s = load_settings()
    assert s.topics.frames == "acme.frames"
    assert s.monitor.ert == 20000


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        Settings().partitions = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value", "setting"),
    [
        ("DRIFTLINE_BOOTSTRAP_SERVER", "x:1", "DRIFTLINE_BOOTSTRAP_SERVER"),
        ("DRIFTLINE_BOOTSTRAP_SERVERS", "nohostport", "DRIFTLINE_BOOTSTRAP_SERVERS"),
        ("DRIFTLINE_REDIS_URL", "http://x", "DRIFTLINE_REDIS_URL"),
        ("DRIFTLINE_PARTITIONS", "zero", "DRIFTLINE_PARTITIONS"),
        ("DRIFTLINE_MONITOR__ERT", "5", "DRIFTLINE_MONITOR__ERT"),
        ("DRIFTLINE_MONITOR__ERTT", "5", "DRIFTLINE_MONITOR__ERTT"),
        ("DRIFTLINE_WEBHOOK_URL", "http://127.0.0.1:1/h", "DRIFTLINE_WEBHOOK_SECRET"),
        ("DRIFTLINE_API__STALE_AFTER_S", "-1", "DRIFTLINE_API__STALE_AFTER_S"),
        ("DRIFTLINE_API__STALE_AFTER_S", "an hour", "DRIFTLINE_API__STALE_AFTER_S"),
        # Within the silence timeout (60 s): a camera would vanish before it is silent.
        ("DRIFTLINE_API__STALE_AFTER_S", "60", "DRIFTLINE_API__STALE_AFTER_S"),
    ],
)
def test_bad_settings_fail_naming_the_setting(monkeypatch, name, value, setting):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == setting
    assert setting in str(info.value)


def test_the_drift_staleness_window_defaults_to_an_hour_and_follows_the_silence(monkeypatch):
    assert (load_settings().stale_after_s, load_settings().api.stale_after_s) == (3600.0, None)
    monkeypatch.setenv("DRIFTLINE_SILENT_AFTER_S", "7200")  # quiet for hours by design
    assert load_settings().stale_after_s == 14400.0  # a worker never fails on the default
    monkeypatch.setenv("DRIFTLINE_API__STALE_AFTER_S", "0")
    assert load_settings().stale_after_s == 0.0  # off
    monkeypatch.setenv("DRIFTLINE_API__STALE_AFTER_S", "7200")  # set: must exceed the silence
    with pytest.raises(ConfigError, match=r"must exceed DRIFTLINE_STATE_INTERVAL_S \(5\) and "
                       r"DRIFTLINE_SILENT_AFTER_S \(7200\)") as info:
        load_settings()
    assert info.value.setting == "DRIFTLINE_API__STALE_AFTER_S"
    monkeypatch.setenv("DRIFTLINE_API__STALE_AFTER_S", "7201")
    assert load_settings().stale_after_s == 7201.0


def test_webhook_secret_is_secret(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_WEBHOOK_URL", "http://127.0.0.1:1/h")
    monkeypatch.setenv("DRIFTLINE_WEBHOOK_SECRET", "whsec_c2VjcmV0")
    s = load_settings()
    assert "c2VjcmV0" not in repr(s)
    assert s.webhook_secret is not None
    assert s.webhook_secret.get_secret_value() == "whsec_c2VjcmV0"


# -- DRIFTLINE_MONITOR__REFERENCE_PATH: bundles are checked at start-up ----------------
# Settings are plain data (nothing they import depends back on them); the
# commands that run monitors read and check the bundles before they start
# (processors.bundles.load_bundles), naming the setting.

REFERENCE_PATH = "DRIFTLINE_MONITOR__REFERENCE_PATH"


@pytest.fixture(scope="module")
def bundle_file(tmp_path_factory):
    """A real bundle: output.confidence calibrated on 60 seeded predictions."""
    import numpy as np

    from driftline.settings import MonitorSettings
    from processors.bundles import bundle_of, write_bundle
    from processors.monitor import StreamMonitor
    from schemas.events import Prediction

    rng = np.random.default_rng(0)
    mon = StreamMonitor("cam", "v1", MonitorSettings(reference_size=60))
    for i in range(60):
        mon.observe(Prediction(event_id=f"p{i}", stream_id="cam", model_version="v1",
                               top_class="cat", confidence=float(0.8 + 0.05 * rng.random())))
    assert mon.signals["output.confidence"].detector is not None
    path = tmp_path_factory.mktemp("bundles") / "cam.json"
    write_bundle(bundle_of(mon, events_used=60), path)
    return path


def test_a_valid_bundle_loads_and_is_not_part_of_checkpoints(monkeypatch, bundle_file):
    from processors.bundles import load_bundles

    monkeypatch.setenv(REFERENCE_PATH, str(bundle_file.parent))
    s = load_settings()
    assert s.monitor.reference_path == bundle_file.parent
    assert "reference_path" not in s.monitor.model_dump()
    assert list(load_bundles(s.monitor)) == [("cam", "v1")]


def test_settings_are_plain_data_and_read_no_file(monkeypatch, tmp_path):
    monkeypatch.setenv(REFERENCE_PATH, str(tmp_path / "nowhere.json"))
    assert load_settings().monitor.reference_path == tmp_path / "nowhere.json"


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("missing", "does not exist"),
        ("empty_dir", "holds no *.json bundle"),
        ("not_json", "is not a valid reference bundle"),
        ("wrong_version", "bundle_version 7 not supported"),
        ("schema", "invalid bundle at stream_id"),
        ("other_budget", "does not fit this monitor"),
        ("duplicate", "are both bundles of stream 'cam'"),
        ("unreadable", "is unreadable"),
    ],
)
def test_bad_reference_bundles_fail_naming_the_setting(
    monkeypatch, tmp_path, bundle_file, case, fragment
):
    text = bundle_file.read_text()
    doc = json.loads(text)
    target = tmp_path / "b.json"
    if case == "missing":
        target = tmp_path / "nowhere.json"
    elif case == "empty_dir":
        target = tmp_path
    elif case == "not_json":
        target.write_text("{half a bundle")
    elif case == "wrong_version":
        target.write_text(json.dumps({**doc, "bundle_version": 7}))
    elif case == "schema":
        target.write_text(json.dumps({**doc, "stream_id": "has spaces"}))
    elif case == "other_budget":
        # Calibrated for ert 10,000: its thresholds would hold another false-alarm rate.
        target.write_text(text)
        monkeypatch.setenv("DRIFTLINE_MONITOR__ERT", "20000")
    elif case == "duplicate":
        (tmp_path / "a.json").write_text(text)
        target.write_text(text)
        target = tmp_path
    elif case == "unreadable":
        target.write_text(text)
        real = Path.read_bytes

        def deny(self):
            if self == target:
                raise PermissionError(13, "Permission denied")
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", deny)
    from processors.bundles import load_bundles

    monkeypatch.setenv(REFERENCE_PATH, str(target))
    with pytest.raises(ConfigError) as info:
        load_bundles(load_settings().monitor)
    assert info.value.setting == REFERENCE_PATH
    assert str(info.value).startswith(REFERENCE_PATH + ": ")
    assert fragment in str(info.value)
