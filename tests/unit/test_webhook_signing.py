"""Standard Webhooks signing and verification (no network)."""

from __future__ import annotations

import base64

import pytest

from sinks.webhook import InvalidSignature, secret_key, sign, signed_headers, verify

# Test vector published with the Standard Webhooks reference libraries.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TS = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_reference_vector() -> None:
    assert sign(SECRET, MSG_ID, TS, BODY) == EXPECTED


def test_round_trip_whsec_and_raw_secrets() -> None:
    for secret in (SECRET, "a plain shared secret", b"\x00raw-bytes"):
        h = signed_headers(secret, "alert-1", BODY, timestamp=TS)
        assert verify(secret, h, BODY, now=TS + 10) is True


def test_whsec_and_raw_forms_of_the_same_key_agree() -> None:
    key = secret_key(SECRET)
    assert sign(key, MSG_ID, TS, BODY) == EXPECTED
    whsec = "whsec_" + base64.b64encode(b"k").decode()
    assert sign(whsec, "i", 1, b"x") == sign(b"k", "i", 1, b"x")


def test_headers_are_case_insensitive() -> None:
    h = {k.title(): v for k, v in signed_headers(SECRET, MSG_ID, BODY, timestamp=TS).items()}
    assert verify(SECRET, h, BODY, now=TS)


def test_one_of_several_signatures_may_match() -> None:
    h = signed_headers(SECRET, MSG_ID, BODY, timestamp=TS)
    h["webhook-signature"] = "v1,Zm9v v2,abc " + h["webhook-signature"]
    assert verify(SECRET, h, BODY, now=TS)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h, b: (h, b + b"x"),  # tampered body
        lambda h, b: ({**h, "webhook-id": "other"}, b),  # id swapped
        lambda h, b: ({**h, "webhook-timestamp": str(TS + 1)}, b),  # timestamp changed
        lambda h, b: ({**h, "webhook-signature": "v1,AAAA"}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
        lambda h, b: ({**h, "webhook-timestamp": "soon"}, b),
    ],
)
def test_tampering_is_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    h, b = mutate(signed_headers(SECRET, MSG_ID, BODY, timestamp=TS), BODY)
    with pytest.raises(InvalidSignature):
        verify(SECRET, h, b, now=TS)


def test_wrong_secret_is_refused() -> None:
    h = signed_headers(SECRET, MSG_ID, BODY, timestamp=TS)
    with pytest.raises(InvalidSignature, match="no signature"):
        verify("whsec_" + base64.b64encode(b"another").decode(), h, BODY, now=TS)


def test_stale_and_future_timestamps_are_refused() -> None:
    h = signed_headers(SECRET, MSG_ID, BODY, timestamp=TS)
    assert verify(SECRET, h, BODY, now=TS + 299)
    with pytest.raises(InvalidSignature, match="away from now"):
        verify(SECRET, h, BODY, now=TS + 301)
    with pytest.raises(InvalidSignature, match="away from now"):
        verify(SECRET, h, BODY, now=TS - 301)


def test_invalid_signature_is_a_permanent_error() -> None:
    from driftline.errors import PermanentError

    assert issubclass(InvalidSignature, PermanentError)
    assert InvalidSignature("x").reason == "invalid_signature"


def test_malformed_whsec_secret_is_a_config_error() -> None:
    from driftline.errors import ConfigError

    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        secret_key("whsec_***")
