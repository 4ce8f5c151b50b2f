"""docker-compose.yml, deploy/prometheus.yml and the Dockerfile agree with the code.

No Docker engine is needed: the files are parsed, every ``driftline`` command a
service runs is parsed by the real CLI (unknown commands or options fail), every
``DRIFTLINE_*`` name (comments included) is a real setting, and Prometheus
scrapes the ports the services serve metrics on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from driftline.cli import app
from driftline.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"

yaml = pytest.importorskip("yaml")


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def driftline_services() -> dict[str, dict[str, Any]]:
    """Services built from this repository's Dockerfile (ENTRYPOINT ["driftline"])."""
    return {name: svc for name, svc in compose()["services"].items() if svc.get("build") == "."}


def parse_cli(args: list[str]) -> str:
    """Parse ``driftline ARGS`` with the real CLI without running it; the command's help.

    ``--help`` is eager: the command prints its help once every argument before it
    parsed, so an unknown command or option (or a missing option value) fails.
    """
    result = CliRunner().invoke(app, [*args, "--help"], env={}, terminal_width=200)
    if result.exit_code != 0:
        raise AssertionError(f"driftline {' '.join(args)}: {result.output.strip()[-400:]}")
    return result.output


def setting_exists(env_name: str) -> bool:
    """``DRIFTLINE_X`` or ``DRIFTLINE_GROUP__FIELD`` names a field of ``Settings``."""
    head, *nested = env_name[len(ENV_PREFIX):].lower().split("__")
    field = Settings.model_fields.get(head)
    if field is None:
        return False
    if not nested:
        return True
    model = field.annotation
    fields = getattr(model, "model_fields", {})
    return len(nested) == 1 and nested[0] in fields


def test_the_parser_of_this_test_refuses_what_the_cli_refuses() -> None:
    assert "--frames" in parse_cli(["simulate", "--frames", "10"])
    assert "--out" in parse_cli(["reference", "export", "f.jsonl", "--stream", "s", "--out", "o"])
    # Values are not converted (--help comes first): names are what is checked.
    for bad in (["no-such-command"], ["sinks", "--no-such-option"], ["simulate", "--frames"]):
        with pytest.raises(AssertionError):
            parse_cli(bad)
    assert setting_exists("DRIFTLINE_MONITOR__ERT") and setting_exists("DRIFTLINE_REDIS_URL")
    assert not setting_exists("DRIFTLINE_REDIS") and not setting_exists("DRIFTLINE_MONITOR__X")


def test_every_compose_command_is_a_real_cli_command() -> None:
    services = driftline_services()
    assert {"worker", "sinks", "topics"} <= set(services)
    for svc in services.values():
        parse_cli([str(a) for a in svc["command"]])  # raises on an unknown command/option


def test_every_driftline_env_name_is_a_real_setting() -> None:
    names = set(re.findall(r"\bDRIFTLINE_[A-Z0-9_]+", COMPOSE.read_text()))
    for svc in compose()["services"].values():
        names |= {k for k in svc.get("environment") or {} if k.startswith(ENV_PREFIX)}
    assert {"DRIFTLINE_BOOTSTRAP_SERVERS", "DRIFTLINE_METRICS_PORT"} <= names
    unknown = sorted(n for n in names if not setting_exists(n))
    assert not unknown, f"not settings of driftline.settings.Settings: {unknown}"
    for svc in driftline_services().values():
        Settings(**{k[len(ENV_PREFIX):].lower(): v for k, v in svc["environment"].items()
                    if "__" not in k})  # the values validate too


def test_prometheus_scrapes_every_metrics_port_the_services_serve() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets: set[tuple[str, int]] = set()
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            targets |= {(n, int(sd["port"])) for n in sd["names"]}
        for static in job.get("static_configs", []):
            targets |= {(t.split(":")[0], int(t.split(":")[1])) for t in static["targets"]}
    serving = {(name, int(svc["environment"]["DRIFTLINE_METRICS_PORT"]))
               for name, svc in driftline_services().items()
               if "DRIFTLINE_METRICS_PORT" in svc["environment"]}
    assert {"worker", "sinks"} <= {name for name, _ in serving}
    assert targets == serving
    for name, port in serving:
        assert str(port) in [str(p) for p in driftline_services()[name].get("expose", [])]
    prom = compose()["services"]["prometheus"]
    assert any(v.startswith("./deploy/prometheus.yml:") for v in prom["volumes"])


def test_the_image_installs_what_the_services_need() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["driftline"]' in dockerfile
    # The camera service plays photo scenes: the image needs the `sim` extra.
    assert re.search(r'pip install [^\n]*"\.\[[^\]]*\bsim\b', dockerfile)
    for package in ("driftline", "schemas", "producers", "processors", "sinks"):
        assert f"COPY {package} {package}" in dockerfile
