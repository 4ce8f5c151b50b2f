"""Secrets and URL credentials never reach logs, errors, dead letters or the terminal."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from driftline.errors import (
    ConfigError,
    install_log_redaction,
    redact,
    redact_url,
    register_secret,
)
from driftline.settings import Settings
from schemas.events import Alert, DeadLetter
from sinks.webhook import WebhookNotifier, WebhookUndeliverable
from sinks.webhook_receiver import WebhookReceiver

SECRET = "whsec_cmVkYWN0aW9uLXRlc3Qtc2VjcmV0"


@pytest.mark.parametrize("text, hidden", [
    ("redis://:hunter2@db:6379/0", "hunter2"),
    ("rediss://admin:hunter2@db:6379/0", "hunter2"),
    ("https://u:p4ss@hooks.example/x", "p4ss"),
    ("https://hooks.example/x?token=abc123&n=1", "abc123"),
    ("https://hooks.example/x?api_key=abc123", "abc123"),
    ("https://hooks.example/x?sig=abc123#f", "abc123"),
    ("secret is whsec_c2VjcmV0LWZvci10ZXN0cw== here", "c2VjcmV0LWZvci10ZXN0cw"),
])
def test_redact_masks_credentials(text, hidden):
    out = redact(f"failed: {text} (retrying)")
    assert hidden not in out and "***" in out and out.startswith("failed: ")


def test_registered_secrets_are_masked_anywhere():
    register_secret("T0K3N-path-segment-42")
    assert redact("POST https://h/services/T0K3N-path-segment-42 ok") == (
        "POST https://h/services/*** ok")
    assert redact_url("https://h:8443/services/T0K3N?x=1") == "https://h:8443/***"


def _alert(n: int = 1) -> Alert:
    return Alert(alert_id=f"a{n}", stream_id="cam-1", model_version="v1", signal="s",
                 detector="d", message="m", statistic=1.0, detected_index=n, change_index=n,
                 detected_event_id="e", ts=datetime(2026, 1, 1, tzinfo=UTC))


def test_webhook_errors_never_show_the_url_token_or_credentials():
    with WebhookReceiver(SECRET, script=[400]) as rx:
        url = rx.url.rstrip("/") + "/hooks/s3cr3t-t0ken?token=qwerty"
        url = url.replace("http://", "http://user:pa55word@")
        notifier = WebhookNotifier(url, SECRET, max_attempts=1)
        with pytest.raises(WebhookUndeliverable) as info:
            notifier.send(_alert())
        notifier.close()
    text = str(info.value)
    for hidden in ("s3cr3t-t0ken", "qwerty", "pa55word", "user"):
        assert hidden not in text, text
    assert "HTTP 400" in text
    # A dead receiver: the transport error does not show it either.
    dead = WebhookNotifier("http://127.0.0.1:9/hooks/s3cr3t-t0ken", SECRET, max_attempts=2,
                           base_delay_s=0.01, timeout_s=1.0)
    with pytest.raises(WebhookUndeliverable) as info:
        dead.send(_alert(2))
    dead.close()
    assert "s3cr3t-t0ken" not in str(info.value) and "127.0.0.1:9" in str(info.value)


def test_dead_letter_details_are_redacted():
    letter = DeadLetter.bounded(original=b"x", detail="POST redis://:hunter2@h/0 failed",
                                max_event_bytes=1 << 20, reason="r", source_topic="t", stage="s")
    assert "hunter2" not in letter.detail


def test_log_records_are_redacted(caplog):
    install_log_redaction()
    with caplog.at_level(logging.WARNING, logger="driftline.test"):
        logging.getLogger("driftline.test").warning("cannot reach %s", "redis://:hunter2@h/0")
    assert "hunter2" not in caplog.text and "redis://***@h/0" in caplog.text


@pytest.mark.parametrize("env", [
    {"DRIFTLINE_REDIS_URL": "http://:hunter2@db:6379/0"},
    {"DRIFTLINE_WEBHOOK_URL": "ftp://hooks.example/T/hunter2?token=hunter2"},
    {"DRIFTLINE_CONTROL_SECRET": "hunter2"},
])
def test_a_config_error_never_echoes_a_password(env):
    with pytest.raises(ConfigError) as info:
        Settings(**{k.removeprefix("DRIFTLINE_").lower(): v for k, v in env.items()})
    assert "hunter2" not in str(info.value)
    # And through the real command line.
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")} | env
    res = subprocess.run([sys.executable, "-m", "driftline", "state", "cam-1"], env=run_env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "configuration error" in res.stderr
    assert "hunter2" not in res.stderr + res.stdout
