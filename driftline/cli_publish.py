"""``driftline publish SOURCE``: cameras, video files, image folders and recordings into Kafka.

Registered on the main ``driftline`` app by :func:`register`. Frame sources
run through ``producers.camera_publish`` (sampling, resizing, local model,
reconnects, bounded outbox, camera status); a JSONL recording through
``producers.publish_recording`` (each line as it is).

Examples
--------
>>> parse_resize("320x240"), parse_resize("640")
((320, 240), (640, None))
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from driftline.errors import ConfigError, DeliveryFailed


def parse_resize(text: str | None) -> tuple[int, int | None] | None:
    """``WxH`` or ``W`` (height from the aspect ratio); ``ConfigError`` naming ``resize``."""
    if not text:
        return None
    w, _, h = text.lower().partition("x")
    try:
        return int(w), (int(h) if h else None)
    except ValueError:
        raise ConfigError("resize", f"expected WIDTHxHEIGHT or WIDTH, got {text!r}") from None


def register(app: typer.Typer) -> None:
    """Add the ``publish`` command to ``app``."""
    app.command()(publish)


def publish(
    source: Annotated[str, typer.Argument(help="rtsp://… or http(s)://… (a network camera), "
                                          "/dev/video0 or 0 (a USB camera), a video file, an "
                                          "image folder, or a JSONL recording.")],
    stream: Annotated[str | None, typer.Option(help="Stream id (required for frame sources; "
                                               "filters a recording).")] = None,
    fps: Annotated[float | None, typer.Option(min=0.001, help="Keep one frame per 1/F s of "
                                              "the source's time (wall clock for a camera, "
                                              "timestamps for a video, file times for a "
                                              "folder); files are also paced to F/s. A "
                                              "recording is paced at F events/s.")] = None,
    model_version: Annotated[str, typer.Option(help="Model version of the events.")]
    = "unknown",
    limit: Annotated[int | None, typer.Option(min=0, help="Publish at most N frames "
                                              "(events, for a recording).")] = None,
    resize: Annotated[str | None, typer.Option(help="Resize kept frames to WxH, or to "
                                               "width W keeping the aspect ratio.")] = None,
    jpeg_quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG quality of "
                                              "re-encoded frames.")] = 90,
    predictions: Annotated[bool, typer.Option(help="Also publish the model's Prediction of "
                                              "each frame (--model, default the worker's "
                                              "embedder).")] = False,
    edge: Annotated[bool, typer.Option(help="Embed locally and publish only predictions "
                                       "carrying the embedding: no frames leave.")] = False,
    model: Annotated[Path | None, typer.Option(help="ONNX model for --predictions/--edge "
                                               "(its manifest beside it, .json); default "
                                               "DRIFTLINE_EMBEDDER__MODEL_PATH or the "
                                               "packaged one.")] = None,
    edge_digits: Annotated[int, typer.Option(min=1, max=17, help="Significant digits of "
                                             "each embedding value on the wire.")] = 4,
    order: Annotated[str, typer.Option(help="Folder order: name or mtime.")] = "name",
    follow: Annotated[bool, typer.Option(help="Keep watching the folder for new files "
                                         "(until Ctrl-C).")] = False,
    buffer: Annotated[int, typer.Option(min=1, help="Events kept while the broker is "
                                        "unreachable; beyond, the oldest are dropped.")] = 1000,
    give_up_after: Annotated[float | None, typer.Option(min=0.0, help="Stop after a camera "
                                                        "has sent nothing for S seconds "
                                                        "(default: reconnect forever).")]
    = None,
    reconnect_max: Annotated[float, typer.Option(min=0.1, help="Longest wait between "
                                                 "reconnect attempts (backoff from 0.5 s, "
                                                 "doubling).")] = 10.0,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds a camera may stay "
                                           "silent before a reconnect.")] = 10.0,
    progress_every: Annotated[float, typer.Option(min=0.1, help="Seconds between progress "
                                                  "lines.")] = 5.0,
) -> None:
    """Publish a camera, a video file, an image folder or a recording.

    Frames go to <prefix>.frames keyed by stream (with --predictions, the model's
    predictions to <prefix>.predictions; with --edge only predictions carrying
    embeddings), camera status events (online / reconnecting / offline) to
    <prefix>.predictions. A camera that drops is reconnected with backoff.
    Progress lines go to stderr; Ctrl-C stops cleanly, flushed. Ends with one
    line of counts.
    """
    from driftline.settings import load_settings
    from producers.camera_source import Backoff, parse_source
    from producers.publisher import Publisher

    settings = load_settings()  # a ConfigError is one line and exit code 2 (cli.main)
    spec = parse_source(source)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if spec.kind == "jsonl":
        from producers.publish_recording import publish_recording

        with Publisher.from_settings(settings, client_id="driftline-publish") as pub:
            recorded = publish_recording(pub, settings.topics, source, stream_id=stream,
                                         fps=fps, limit=limit)
        typer.echo(recorded.summary(source), err=True)
        return
    if stream is None:
        raise ConfigError("stream", f"a stream id (--stream) is needed to publish {spec.shown}")
    if order not in ("name", "mtime"):
        raise ConfigError("order", f"must be name or mtime, got {order!r}")
    from producers.camera_publish import CameraOptions, CameraPublisher
    from producers.outbox import Outbox

    options = CameraOptions(
        stream_id=stream, model_version=model_version, fps=fps, resize=parse_resize(resize),
        jpeg_quality=jpeg_quality, order="mtime" if order == "mtime" else "name",
        follow=follow, limit=limit, edge_digits=edge_digits, progress_s=progress_every,
        backoff=Backoff(cap=reconnect_max, give_up_s=give_up_after), timeout_s=timeout)
    local = None
    if predictions or edge:
        from processors.embedder import Embedder

        emb = settings.embedder
        local = (Embedder.load(model, None, emb.threads) if model is not None
                 else Embedder.load(emb.model_path, emb.manifest_path, emb.threads))
    # In flight events are retried for minutes (a broker outage); the outbox bounds the rest.
    pub = Publisher.from_settings(settings, client_id="driftline-publish",
                                  delivery_timeout_ms=300_000)
    box = Outbox(pub, max_buffered=buffer)
    cam = CameraPublisher(box, settings.topics, options, predictor=None if edge else local,
                          edge=local if edge else None, stop=stop,
                          progress=lambda line: typer.echo(line, err=True))
    try:
        counts = cam.run(spec)
    finally:
        drained = box.drain(30.0)
        try:
            pub.flush(5.0)
        except DeliveryFailed as exc:
            typer.echo(f"error: {exc}", err=True)
            drained = False
        typer.echo(cam.counts.line(box), err=True)
    typer.echo(counts.summary(spec.shown), err=True)  # a URL's password is not shown
    if not drained:
        raise typer.Exit(1)
