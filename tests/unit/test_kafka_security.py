"""Kafka security settings: one block of librdkafka options for every client, typed secrets."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest

from driftline.errors import ConfigError
from driftline.kafka_config import consumer_config, faust_credentials, producer_config, ssl_context
from driftline.settings import Settings, load_settings

SASL = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "driftline"}


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real self-signed certificate (openssl), as a CA file."""
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=kafka.test", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return d / "cert.pem"


def test_options_and_typed_passwords_reach_every_client_config():
    s = Settings(kafka_options=SASL, kafka_sasl_password="s3cr3t-pw",
                 kafka_ssl_key_password="key-pw")
    opts = s.kafka_client_options()
    for conf in (producer_config("b:1", options=opts), consumer_config("b:1", "g", options=opts)):
        assert conf["security.protocol"] == "SASL_SSL"
        assert conf["sasl.password"] == "s3cr3t-pw" and conf["ssl.key.password"] == "key-pw"
    # The passwords never show in the settings' repr or dump.
    assert "s3cr3t-pw" not in repr(s) and "s3cr3t-pw" not in s.model_dump_json()


def test_options_come_from_the_environment_as_json(monkeypatch):
    monkeypatch.setenv("DRIFTLINE_KAFKA_OPTIONS", '{"security.protocol": "SSL"}')
    monkeypatch.setenv("DRIFTLINE_KAFKA_SASL_PASSWORD", "from-env")
    s = load_settings()
    assert s.kafka_client_options() == {"security.protocol": "SSL", "sasl.password": "from-env"}


@pytest.mark.parametrize("options, words", [
    ({"sasl.password": "hunter22"}, ["DRIFTLINE_KAFKA_SASL_PASSWORD"]),
    ({"ssl.key.password": "hunter22"}, ["DRIFTLINE_KAFKA_SSL_KEY_PASSWORD"]),
    ({"bootstrap.servers": "x:1"}, ["DRIFTLINE_BOOTSTRAP_SERVERS"]),
    ({"group.id": "x"}, ["DRIFTLINE_CONSUMER_GROUP"]),
    ({"Not A Property": "x"}, ["librdkafka property"]),
])
def test_bad_options_are_config_errors_that_never_echo_a_value(options, words):
    with pytest.raises(ConfigError) as info:
        Settings(kafka_options=options)
    assert info.value.setting == "DRIFTLINE_KAFKA_OPTIONS"
    assert all(w in str(info.value) for w in words)
    assert "hunter22" not in str(info.value)


def test_sasl_ssl_maps_to_faust_credentials_with_a_real_tls_context(ca_file: Path):
    creds = faust_credentials({**SASL, "sasl.password": "pw", "ssl.ca.location": str(ca_file)})
    assert type(creds).__name__ == "SASLCredentials"
    assert (creds.username, creds.password, creds.mechanism.value) == (
        "driftline", "pw", "SCRAM-SHA-512")
    assert isinstance(creds.ssl_context, ssl.SSLContext)
    assert creds.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert creds.ssl_context.get_ca_certs()[0]["subject"] == ((("commonName", "kafka.test"),),)


def test_ssl_maps_to_ssl_credentials_with_a_client_certificate(ca_file: Path):
    creds = faust_credentials({"security.protocol": "SSL", "ssl.ca.location": str(ca_file),
                               "ssl.certificate.location": str(ca_file),
                               "ssl.key.location": str(ca_file.with_name("key.pem")),
                               "ssl.endpoint.identification.algorithm": "none"})
    assert type(creds).__name__ == "SSLCredentials"
    assert creds.context.check_hostname is False


def test_unusable_tls_and_sasl_options_fail_at_start_up():
    with pytest.raises(ConfigError):
        ssl_context({"ssl.ca.location": "/nonexistent/ca.pem"})
    with pytest.raises(ConfigError):
        faust_credentials({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "GSSAPI"})
    with pytest.raises(ConfigError):
        faust_credentials({"security.protocol": "CARRIER_PIGEON"})


def test_the_worker_app_gets_the_credentials():
    from processors.stream_app import build_app

    s = Settings(kafka_options={"security.protocol": "SASL_PLAINTEXT", "sasl.username": "u"},
                 kafka_sasl_password="pw")
    creds = build_app(s).conf.broker_credentials
    assert (creds.username, creds.password, creds.mechanism.value) == ("u", "pw", "PLAIN")


def test_a_child_process_environment_carries_the_options_as_json(monkeypatch):
    from driftline.local_infra import settings_env

    s = Settings(kafka_options={"security.protocol": "SSL"}, kafka_sasl_password="pw",
                 monitor={"edge_dims": {"v1": 512}})
    env = settings_env(s, base={})
    assert "DRIFTLINE_KAFKA_OPTIONS" not in settings_env(Settings(), base={})
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    back = load_settings()
    assert back.kafka_client_options() == {"security.protocol": "SSL", "sasl.password": "pw"}
    assert back.monitor.edge_dims == {"v1": 512}
