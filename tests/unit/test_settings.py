"""Settings: defaults, environment, and start-up failures that name the setting."""

from __future__ import annotations

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
    ],
)
def test_bad_settings_fail_naming_the_setting(monkeypatch, name, value, setting):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.setting == setting
    assert setting in str(info.value)


def test_webhook_secret_is_secret(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_WEBHOOK_URL", "http://127.0.0.1:1/h")
    monkeypatch.setenv("DRIFTLINE_WEBHOOK_SECRET", "whsec_c2VjcmV0")
    s = load_settings()
    assert "c2VjcmV0" not in repr(s)
    assert s.webhook_secret is not None
    assert s.webhook_secret.get_secret_value() == "whsec_c2VjcmV0"
