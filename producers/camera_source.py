"""Live and recorded camera sources for ``driftline publish``: what to open, and reading it.

- :func:`parse_source` says what a SOURCE argument is: an RTSP/HTTP(S)/RTMP
  URL, a USB device (``/dev/video0`` or an index), an image folder, a JSONL
  recording or a video file.
- :class:`Capture` reads frames through OpenCV's ``VideoCapture`` (FFmpeg for
  URLs and files, V4L2 for devices). A live source that drops (an RTSP server
  restarted, a cable pulled) is reopened with exponential backoff, and each
  change is reported through ``on_status`` (``online``, ``reconnecting``,
  ``offline``): the publisher turns those into ``CameraStatus`` events.
- :class:`TimeSampler` keeps one frame per ``1/fps`` seconds of *time*
  (stream time for files, the wall clock for live sources), not one per N
  frames: a camera that changes its own frame rate is still sampled at
  ``fps``.

USB devices go through the same code as URLs (``cv2.VideoCapture(index,
CAP_V4L2)``); no camera device exists on the machines driftline is tested
on, so only their argument parsing is tested.

Examples
--------
>>> parse_source("rtsp://user:pw@10.0.0.5:554/stream1").kind
'url'
>>> parse_source("/dev/video2").device, parse_source("0").device
(2, 0)
>>> s = TimeSampler(2.0); [s.due(t) for t in (0.0, 0.1, 0.49, 0.5, 0.9, 1.2)]
[True, False, False, True, False, True]
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from driftline.errors import ConfigError, UndecodableImage, redact

SourceKind = Literal["url", "device", "folder", "jsonl", "video"]
URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "srt://")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
OPEN_TIMEOUT_S = 10.0
_DEVICE = re.compile(r"^(?:/dev/video(\d+)|(\d+))$")

# Status words the capture reports (``CameraStatus.status``).
Status = Literal["online", "reconnecting", "offline"]
StatusCallback = Callable[[Status, str, int, float | None], None]


@dataclass(frozen=True)
class SourceSpec:
    """What a SOURCE argument names: its kind, the text, and a device number."""

    kind: SourceKind
    target: str
    device: int | None = None

    @property
    def live(self) -> bool:
        """A camera (URL or device): reconnected when it drops, sampled by the wall clock."""
        return self.kind in ("url", "device")

    @property
    def shown(self) -> str:
        """The target for logs and events: a URL's password redacted."""
        return redact(self.target)


def parse_source(text: str) -> SourceSpec:
    """The kind of a SOURCE argument; ``ConfigError`` (naming ``source``) if it is none.

    A URL is recognised by its scheme (``rtsp``, ``rtsps``, ``rtmp``, ``http``,
    ``https``, ``udp``, ``srt``); ``/dev/videoN`` or a bare number is a USB
    device; otherwise the path must exist: a directory is an image folder, a
    ``.jsonl``/``.ndjson`` (optionally ``.gz``) file a recording, any other
    file a video.
    """
    if text.lower().startswith(URL_SCHEMES):
        return SourceSpec("url", text)
    m = _DEVICE.match(text)
    if m:
        return SourceSpec("device", text, int(m.group(1) or m.group(2)))
    path = Path(text)
    if path.is_dir():
        return SourceSpec("folder", text)
    if path.is_file():
        return SourceSpec("jsonl" if path.name.lower().endswith(JSONL_SUFFIXES) else "video",
                          text)
    raise ConfigError("source", f"{redact(text)} is not a URL ({', '.join(URL_SCHEMES)}), a "
                      "device (/dev/videoN or an index), nor an existing folder or file")


class TimeSampler:
    """Keep a frame when its time enters a new ``1/fps`` slot; ``fps=None`` keeps all.

    Times are seconds from any origin, non-decreasing for a well-behaved source;
    a time that goes back (a looping file, a camera's clock reset) starts over.
    """

    def __init__(self, fps: float | None) -> None:
        if fps is not None and not fps > 0:
            raise ConfigError("fps", f"must be > 0, got {fps}")
        self.fps = fps
        self._last: int | None = None

    def due(self, t: float) -> bool:
        if self.fps is None:
            return True
        # The epsilon keeps exact ratios (10 -> 5 fps) from flickering on rounding.
        slot = int(t * self.fps + 1e-9)
        if slot == self._last:
            return False
        self._last = slot
        return True


@dataclass
class Backoff:
    """Reconnect delays: ``first`` seconds, times ``factor`` each attempt, at most ``cap``.

    ``give_up_s``: stop reconnecting (and report ``offline``) after this many
    seconds without frames; None = never.

    >>> b = Backoff(first=0.5, factor=2.0, cap=3.0)
    >>> [b.delay(a) for a in (1, 2, 3, 4, 5)]
    [0.5, 1.0, 2.0, 3.0, 3.0]
    """

    first: float = 0.5
    factor: float = 2.0
    cap: float = 10.0
    give_up_s: float | None = None

    def delay(self, attempt: int) -> float:
        return float(min(self.cap, self.first * self.factor ** max(0, attempt - 1)))


@dataclass
class Grabbed:
    """One frame read from a capture: its index, time, and the pixels on demand.

    ``rgb()`` decodes the frame (a live source grabs every frame so its
    buffer never lags, and decodes only those sampled); valid until the next
    frame is read.
    """

    index: int
    t: float
    _cap: cv2.VideoCapture

    def rgb(self) -> np.ndarray:
        ok, bgr = self._cap.retrieve()
        if not ok or bgr is None:
            raise UndecodableImage(f"frame {self.index} could not be decoded")
        return np.ascontiguousarray(bgr[:, :, ::-1])


def open_capture(spec: SourceSpec, timeout_s: float = 10.0) -> cv2.VideoCapture:
    """An opened ``cv2.VideoCapture`` for a URL, a device or a video file (or raise).

    URLs go through FFmpeg with a read timeout (a dead RTSP server is
    noticed within ``timeout_s``, not TCP's minutes; opening may take up to
    ``OPEN_TIMEOUT_S``) over TCP
    (``OPENCV_FFMPEG_CAPTURE_OPTIONS``, unless set already); devices through V4L2.

    Raises
    ------
    UndecodableImage
        OpenCV cannot open it (a transient condition for a live source).
    """
    # Opening probes the stream (FFmpeg reads seconds of it): at least OPEN_TIMEOUT_S.
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(max(timeout_s, OPEN_TIMEOUT_S) * 1000),
              cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(timeout_s * 1000)]
    if spec.kind == "url":
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        cap = cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, params)
    elif spec.kind == "device":
        cap = cv2.VideoCapture(int(spec.device or 0), cv2.CAP_V4L2, params)
    elif spec.kind == "video":
        cap = cv2.VideoCapture(spec.target)
    else:
        raise ConfigError("source", f"{spec.shown} is a {spec.kind}, not a video source")
    if not cap.isOpened():
        cap.release()
        raise UndecodableImage(f"cannot open {spec.shown}")
    return cap


class Capture:
    """Frames of a video source, reconnecting a live one when it drops.

    Parameters
    ----------
    spec : SourceSpec
        A ``url``, ``device`` or ``video``.
    backoff : Backoff
        Reconnect delays of a live source (a file is read once, no reconnects).
    on_status : callable
        ``on_status(status, detail, attempt, gap_s)`` on every change:
        ``online`` when the source opened (``gap_s``: seconds without frames
        when it came back), ``reconnecting`` before each attempt, ``offline``
        when the capture ends (end of file, ``stop`` set, or given up).
    stop : threading.Event
        Set (by Ctrl-C) to end the capture between frames or backoff waits.
    timeout_s : float
        Open and read timeout of a live source.
    clock : callable
        Seconds, monotonic: the time of a live source's frames.
    """

    def __init__(self, spec: SourceSpec, *, backoff: Backoff | None = None,
                 on_status: StatusCallback | None = None,
                 stop: threading.Event | None = None, timeout_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 opener: Callable[[SourceSpec, float], cv2.VideoCapture] = open_capture) -> None:
        self.spec = spec
        self.backoff = backoff or Backoff()
        self.on_status = on_status or (lambda *_: None)
        self.stop = stop or threading.Event()
        self.timeout_s = timeout_s
        self.clock = clock
        self.opener = opener
        self.read = 0
        self.reconnects = 0  # outages recovered from
        self.attempt = 0  # reconnect attempts in the current outage
        self._cap: cv2.VideoCapture | None = None

    def frames(self) -> Generator[Grabbed, None, None]:
        """Every frame, in order, until the end, ``stop`` or giving up; then ``offline``."""
        why = "stopped"
        try:
            why = yield from self._frames()
        finally:
            self.on_status("offline", why, self.attempt, None)

    def _frames(self) -> Generator[Grabbed, None, str]:
        try:
            return (yield from self._loop())
        finally:
            if self._cap is not None:  # closed early (a limit, Ctrl-C): let the camera go
                self._cap.release()
                self._cap = None

    def _loop(self) -> Generator[Grabbed, None, str]:
        spec = self.spec
        lost_at: float | None = None  # when the last frame came, during an outage
        cap = None
        while not self.stop.is_set():
            if cap is None:
                try:
                    cap = self._cap = self.opener(spec, self.timeout_s)
                except UndecodableImage as exc:
                    if not spec.live:
                        raise
                    lost_at = self.clock() if lost_at is None else lost_at
                    self.attempt += 1
                    if self._give_up(lost_at):
                        return f"no frames for {self.clock() - lost_at:.0f} s: gave up"
                    self.on_status("reconnecting", str(exc), self.attempt, None)
                    self.stop.wait(self.backoff.delay(self.attempt))
                    continue
                gap = None if lost_at is None else self.clock() - lost_at
                self.on_status("online", spec.shown, self.attempt, gap)
                self.reconnects += self.attempt > 0
                self.attempt, lost_at = 0, None
            if not cap.grab():
                cap.release()
                cap = self._cap = None
                if not spec.live:
                    return "end of file"
                lost_at = self.clock()
                self.attempt = 1
                self.on_status("reconnecting", f"{spec.shown}: no frame within "
                               f"{self.timeout_s:g} s or stream ended", self.attempt, None)
                self.stop.wait(self.backoff.delay(self.attempt))
                continue
            self.read += 1
            t = self.clock() if spec.live else cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            yield Grabbed(self.read - 1, t, cap)
        return "stopped"

    def _give_up(self, lost_at: float) -> bool:
        limit = self.backoff.give_up_s
        return limit is not None and self.clock() - lost_at >= limit
