"""Authenticated control: signed commands, and the router's refusals with reasons."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from driftline.errors import ConfigError
from driftline.settings import Settings
from processors.commands import ControlAuth, canonical_bytes, sign_command
from processors.monitor import MonitorRegistry
from processors.router import Router, Source
from schemas.events import Command, utcnow
from schemas.wire import encode

SECRET = "control-secret-0123456789"


def _command(**kw) -> Command:
    return Command(stream_id="cam-1", action="rereference", **kw)


def _router() -> Router:
    return Router(MonitorRegistry(), control=ControlAuth(SECRET, max_age_s=60))


def _reason(router: Router, raw: bytes, source: Source = Source.CONTROL) -> str | None:
    routed = router.route(raw, source)
    return routed.rejected[0].reason if routed.rejected else None


def test_a_command_without_action_is_invalid():
    assert _reason(Router(MonitorRegistry()),
                   b'{"kind":"command","stream_id":"cam-1"}') == "invalid_event"


def test_signed_commands_are_applied_and_everything_else_is_refused_with_a_reason():
    router = _router()
    good = sign_command(_command(), SECRET)
    assert _reason(router, encode(good)) is None
    assert _reason(router, encode(good)) == "replayed_command"
    assert _reason(router, encode(_command())) == "unsigned_command"
    assert _reason(router, encode(sign_command(_command(), "another-secret-0123456"))) \
        == "bad_signature"
    # A signed command with one field changed afterwards.
    tampered = sign_command(_command(), SECRET).model_copy(
        update={"signals": ["output.confidence"]})
    assert _reason(router, encode(tampered)) == "bad_signature"
    old = sign_command(_command(ts=utcnow() - timedelta(seconds=120)), SECRET)
    assert _reason(router, encode(old)) == "stale_command"
    future = sign_command(_command(ts=utcnow() + timedelta(seconds=120)), SECRET)
    assert _reason(router, encode(future)) == "stale_command"
    assert _reason(router, encode(_command()).replace(b'"signature":null',
                                                      b'"signature":"v1,AAAA"')) \
        == "bad_signature"


def test_the_signature_does_not_depend_on_key_order_or_whitespace():
    import json

    cmd = sign_command(_command(), SECRET)
    doc = json.loads(encode(cmd))
    shuffled = json.dumps(dict(reversed(list(doc.items()))), indent=2).encode()
    assert _reason(_router(), shuffled) is None
    assert b"signature" not in canonical_bytes(cmd)


def test_a_recording_s_commands_are_not_verified():
    # replay runs the operator's own file, maybe long after its commands were made
    assert _reason(_router(), encode(_command()), Source.RECORDING) is None


def test_without_a_secret_commands_apply_and_a_warning_is_logged_once(caplog):
    with caplog.at_level(logging.WARNING, logger="driftline.commands"):
        assert ControlAuth.from_settings(Settings()) is None
    assert [r.getMessage() for r in caplog.records if "unauthenticated" in r.getMessage()]
    assert _reason(Router(MonitorRegistry()), encode(_command())) is None
    auth = ControlAuth.from_settings(Settings(control_secret=SECRET, control_max_age_s=30))
    assert auth is not None and auth.max_age_s == 30


def test_a_short_control_secret_is_a_config_error_that_does_not_echo_it():
    with pytest.raises(ConfigError) as info:
        Settings(control_secret="tooshort-secret")
    assert info.value.setting == "DRIFTLINE_CONTROL_SECRET"
    assert "tooshort" not in str(info.value)
