"""The ``driftline`` command line.

Every command reads the same frozen ``Settings`` from ``DRIFTLINE_*``
environment variables; a misnamed or invalid setting stops the command at
start-up with the setting's name (exit code 2).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from driftline import cli_api, cli_publish
from driftline.cli_controls import cli_settings as _settings
from driftline.cli_controls import register as register_controls
from driftline.errors import ConfigError, DriftlineError

app = typer.Typer(
    help="driftline: drift monitoring for computer-vision models, Kafka in, alerts out.",
    no_args_is_help=True,
    add_completion=False,
)


class _SimulateHelp(TyperCommand):
    """``simulate --help`` lists the drift kinds and scenes (imported only for the help)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from producers.drift_injection import KINDS
        from producers.scenes import list_scenes

        self.epilog = (f"Drift kinds: {', '.join(KINDS)}.\n\n"
                       f"Scenes: {', '.join(list_scenes())} (or video:PATH).")
        super().format_help(ctx, formatter)


def _wait_for_interrupt() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@app.command()
def up(
    broker_port: Annotated[int, typer.Option(help="Broker port (0 = free port).")] = 19092,
    redis_port: Annotated[int, typer.Option(help="Redis port (0 = free port).")] = 16379,
) -> None:
    """Start the embedded broker (Tansu) and a Redis on loopback, create the topics, wait."""
    from driftline.local_infra import LocalBroker, LocalRedis, ensure_topics

    settings = _settings()
    with LocalBroker(broker_port or None) as broker, LocalRedis(redis_port or None) as redis:
        ensure_topics(broker.bootstrap, settings.topics, settings.partitions)
        typer.echo(f"export DRIFTLINE_BOOTSTRAP_SERVERS={broker.bootstrap}")
        typer.echo(f"export DRIFTLINE_REDIS_URL={redis.url}")
        typer.echo(f"broker (pid {broker.pid}) and redis (pid {redis.pid}) are up; logs: "
                   f"{broker.log_path} {redis.log_path}; Ctrl-C stops both", err=True)
        _wait_for_interrupt().wait()


@app.command("create-topics")
def create_topics() -> None:
    """Create driftline's topics on the configured broker (idempotent)."""
    from driftline.local_infra import ensure_topics

    settings = _settings()
    for name, outcome in ensure_topics(
        settings.bootstrap_servers, settings.topics, settings.partitions,
        options=settings.kafka_client_options(),
    ).items():
        typer.echo(f"{name}: {outcome}")


@app.command()
def worker(loglevel: str = "warning") -> None:
    """Run a stream worker (embedder + monitors) until interrupted."""
    from driftline import early_stop

    # Before the ~2 s import below (driftline.__main__.run did it already, for a
    # CLI run another way): a stop signal is recorded, not fatal.
    early_stop.install()
    from processors.stream_app import run_worker

    settings = _settings()
    # faust parses sys.argv itself: give it only what it understands.
    sys.argv = [sys.argv[0], "worker", "--loglevel", loglevel]
    run_worker(settings, loglevel=loglevel)


@app.command()
def sinks() -> None:
    """Run the Redis writer and (if configured) the webhook notifier until interrupted."""
    from sinks.runner import run_sinks

    settings = _settings()
    run_sinks(settings, _wait_for_interrupt())


@app.command(cls=_SimulateHelp)
def simulate(
    stream: Annotated[str, typer.Option(help="Stream id of the simulated camera.")] = "cam-1",
    frames: Annotated[int, typer.Option(min=1)] = 800,
    scene: str = "coffee",
    seed: int = 0,
    drift: Annotated[str | None, typer.Option(help="Drift kind to inject (none if unset; the "
                                              "kinds are listed below).")] = None,
    onset: Annotated[int, typer.Option(help="Frame index where the drift begins.")] = 500,
    ramp: Annotated[int, typer.Option(help="Frames over which it ramps in (0 = sudden).")] = 0,
    severity: float = 1.0,
    predictions: Annotated[bool, typer.Option(help="Run the default model as the "
                                              "deployed classifier.")] = True,
    labels: bool = False,
    model_version: str = "v1",
    out: Annotated[Path | None, typer.Option(help="Write a JSONL recording here "
                                             "instead of publishing.")] = None,
) -> None:
    """Play a simulated camera (frames, predictions, labels) into Kafka or a JSONL file."""
    from processors.embedder import Embedder
    from producers.camera_events import camera_events, publish_camera
    from producers.drift_injection import DriftSpec
    from producers.scenes import check_scene

    settings = _settings()
    try:
        spec = DriftSpec(kind=drift, onset=onset, ramp=ramp, severity=severity) if drift else None
    except ValueError as exc:
        typer.echo(f"--drift: {exc}", err=True)
        raise typer.Exit(2) from None
    check_scene(scene)  # before loading a model: a missing scene package is one clear line
    predictor = Embedder.load(
        settings.embedder.model_path, settings.embedder.manifest_path, settings.embedder.threads
    ) if predictions else None
    events = camera_events(
        stream_id=stream, frames=frames, scene=scene, seed=seed, drift=spec,
        model_version=model_version, predictor=predictor, labels=labels,
    )
    if out is not None:
        from schemas.wire import encode

        part = out.with_name(out.name + ".part")  # no empty or half file on a failure
        try:
            with part.open("wb") as fh:
                n = 0
                for ce in events:
                    fh.write(encode(ce.event) + b"\n")
                    n += 1
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        part.replace(out)
        typer.echo(f"wrote {n} events to {out}", err=True)
        return
    from producers.publisher import Publisher

    with Publisher.from_settings(settings) as pub:
        n = publish_camera(pub, settings.topics, events)
    typer.echo(f"published {n} events for {stream}", err=True)


cli_publish.register(app)  # driftline publish: cameras, files, folders, recordings


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Run the monitor offline over a JSONL recording; print alerts as JSON lines.

    Each output line is {"index": <0-based line of the firing event>, "alert": {...}}.
    Rejected lines are reported on stderr as {"index": i, "reason": ..., "detail": ...}.
    """
    from threadpoolctl import threadpool_limits

    from processors.bundles import load_references
    from processors.frame_pipeline import FramePipeline
    from processors.monitor import MonitorRegistry
    from processors.replay import Fired, replay_lines

    settings = _settings()
    # One BLAS thread, as the worker (processors/stream_app.py): each stream's
    # PCA warm-up is a small SVD, which a second spinning BLAS thread only
    # slows down (2x the CPU on an idle machine, far more on a busy one).
    threadpool_limits(1, user_api="blas")
    # Bundles are read and checked before the first line (ConfigError naming the setting).
    registry = MonitorRegistry(settings.monitor, load_references(settings.monitor))
    with file.open("rb") as fh:
        for item in replay_lines(
            fh,
            registry=registry,
            pipeline=lambda: FramePipeline.from_settings(
                settings.embedder, settings.max_event_bytes
            ),
            max_bytes=settings.max_event_bytes,
        ):
            if isinstance(item, Fired):
                line = {"index": item.index, "alert": item.alert.model_dump(mode="json")}
                sys.stdout.write(json.dumps(line) + "\n")
                sys.stdout.flush()
            else:
                rec = {"index": item.index, "reason": item.reason, "detail": item.detail}
                sys.stderr.write(json.dumps(rec) + "\n")


reference_app = typer.Typer(
    help="Reference bundles: a stream's calibrated monitor state in a JSON file.",
    no_args_is_help=True,
)
app.add_typer(reference_app, name="reference")


@reference_app.command("export")
def reference_export(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="JSONL recording of clean data (as for replay).")],
    stream: Annotated[str, typer.Option(help="Stream id whose reference to build.")],
    out: Annotated[Path, typer.Option(help="Bundle file to write (JSON).")],
    model_version: Annotated[str | None, typer.Option(
        help="Model version (default: the stream's first one in the recording).")] = None,
) -> None:
    """Build a stream's reference bundle from a clean recording.

    Runs the monitor (as replay does) over FILE until every signal has
    calibrated, and writes the bundle for DRIFTLINE_MONITOR__REFERENCE_PATH.
    """
    from processors.bundle_export import export_reference
    from processors.bundles import write_bundle
    from processors.frame_pipeline import FramePipeline

    settings = _settings()
    with file.open("rb") as fh:
        try:
            result = export_reference(
                fh,
                stream_id=stream,
                model_version=model_version,
                monitor=settings.monitor,
                pipeline=lambda: FramePipeline.from_settings(
                    settings.embedder, settings.max_event_bytes
                ),
                max_bytes=settings.max_event_bytes,
                source=file.name,
            )
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
    write_bundle(result.bundle, out)
    b = result.bundle
    typer.echo(
        f"wrote {out}: {b.stream_id}/{b.model_version}, {len(b.signals)} calibrated signals "
        f"from {b.events_used} events" + (f", {result.rejected} lines rejected"
                                           if result.rejected else ""),
        err=True,
    )
    if result.warming_up:
        typer.echo("still warming up (will warm up on live data): "
                   + ", ".join(result.warming_up), err=True)


@app.command()
def redrive(
    from_beginning: Annotated[bool, typer.Option(
        help="Re-send every dead-lettered delivery on the topic, not only those not yet "
             "re-driven (receivers deduplicate on webhook-id).")] = False,
    max_attempts: Annotated[int, typer.Option(
        min=1, help="Attempts per alert before the run stops (receiver still down).")] = 2,
    idle: Annotated[float, typer.Option(
        min=0.1, help="Stop after this many seconds without a dead letter.")] = 3.0,
) -> None:
    """Re-send alerts dead-lettered as webhook_undeliverable to DRIFTLINE_WEBHOOK_URL.

    Same signature scheme and webhook-id (the alert id) as the first attempt; an
    alert is sent once per run, and progress is committed (group
    <consumer_group>.redrive), so running it again sends nothing twice. Prints one
    JSON line of counts; exit code 1 if the receiver is still unreachable.
    """
    from sinks.redrive import redrive as run_redrive
    from sinks.webhook import WebhookNotifier

    settings = _settings()
    notifier = WebhookNotifier.from_settings(settings, max_delay_s=5.0)
    notifier.max_attempts = max_attempts
    try:
        report = run_redrive(settings, notifier, from_beginning=from_beginning, idle_s=idle)
    finally:
        notifier.close()
    typer.echo(json.dumps({"sent": report.sent, "duplicates": report.duplicates,
                           "refused": report.refused, "unreadable": report.unreadable,
                           "other_reasons": report.other_reasons,
                           "stopped_at": report.stopped_at}))
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def state(stream: str) -> None:
    """Print what Redis holds for STREAM: per-signal state and recent alerts."""
    from driftline.service_log import require_redis
    from sinks.redis_state import read_stream

    settings = _settings()
    require_redis(settings.redis_url)
    typer.echo(json.dumps(read_stream(settings.redis_url, stream, namespace=settings.topic_prefix),
                          indent=2, default=str))


@app.command()
def demo(
    frames: Annotated[int, typer.Option(min=100)] = 900,
    drift: str = "brightness",
    onset: int = 600,
    scene: str = "coffee",
    seed: int = 0,
) -> None:
    """Everything at once on embedded defaults: broker, Redis, worker, sinks, a camera
    with injected drift, a webhook receiver; alerts printed as they arrive."""
    from driftline.demo import run_demo

    raise typer.Exit(run_demo(frames=frames, drift=drift, onset=onset, scene=scene, seed=seed))


cli_api.register(app)  # `driftline api`: the HTTP API and the operator's page
register_controls(app)


def main() -> None:
    """Console entry point: library errors become one clear line, not a traceback."""
    try:
        app()
    except ConfigError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
    except DriftlineError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
