"""DRIFTLINE_KAFKA_OPTIONS reach a real client: TLS against a plaintext broker cannot deliver."""

from __future__ import annotations

import pytest

from driftline.errors import DriftlineError
from driftline.settings import Settings
from producers.publisher import Publisher
from schemas.events import Label

pytestmark = [pytest.mark.integration]


def _label() -> Label:
    return Label(event_id="l1", stream_id="cam-1", target_event_id="p1", true_class="cat")


def test_security_options_are_applied_by_the_publisher(settings: Settings):
    with Publisher.from_settings(settings, delivery_timeout_ms=3000) as pub:
        pub.publish(settings.topics.labels, _label())  # plaintext: delivered
    tls = settings.model_copy(update={"kafka_options": {"security.protocol": "SSL"}})
    # The flush on leaving the block raises: nothing was delivered.
    with pytest.raises(DriftlineError), Publisher.from_settings(
            tls, delivery_timeout_ms=3000) as pub:
        pub.publish(settings.topics.labels, _label())


def test_security_options_are_applied_by_the_admin_client(settings: Settings):
    from driftline.local_infra import ensure_topics

    assert set(ensure_topics(settings.bootstrap_servers, settings.topics, 2).values()) == {
        "exists"}
    with pytest.raises(DriftlineError):
        ensure_topics(settings.bootstrap_servers, settings.topics, 2, timeout_s=3,
                      options={"security.protocol": "SSL"})
