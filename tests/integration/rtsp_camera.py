"""A real RTSP camera for the tests: GStreamer's RTSP server serving MJPEG video files.

Run with the *system* Python (Debian's ``python3-gst-1.0`` and
``gir1.2-gst-rtsp-server-1.0`` live there, not in the project's virtualenv)::

    /usr/bin/python3 rtsp_camera.py --port P --control FILE a.avi b.avi

Each file (Motion-JPEG AVI, what OpenCV's ``VideoWriter`` writes with
``MJPG``) is demuxed by GStreamer's ``avidemux`` into its JPEG frames at
start-up; the server then plays them, looping, at ``--fps`` on
``rtsp://127.0.0.1:P/cam`` (RTP/JPEG, no re-encoding). ``--control`` names a
file holding the index of the video to play: the test switches the served
video by rewriting it, live, without dropping the connection. Prints
``ready`` once it listens; SIGTERM/SIGKILL stops it like a camera losing power.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def jpeg_frames(path: str) -> list[bytes]:
    """The JPEG frames of an MJPEG AVI, demuxed by GStreamer."""
    pipe = Gst.parse_launch(
        f'filesrc location="{path}" ! avidemux ! appsink name=sink sync=false')
    sink = pipe.get_by_name("sink")
    pipe.set_state(Gst.State.PLAYING)
    frames = []
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        buf = sample.get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        if ok:
            frames.append(bytes(info.data))
            buf.unmap(info)
    pipe.set_state(Gst.State.NULL)
    if not frames:
        sys.exit(f"no JPEG frames in {path}")
    return frames


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--fps", type=int, default=10)
    ap.add_argument("--control", required=True)
    ap.add_argument("videos", nargs="+")
    args = ap.parse_args()
    Gst.init(None)
    videos = [jpeg_frames(v) for v in args.videos]
    control = Path(args.control)
    period_ns = Gst.SECOND // args.fps
    state = {"n": 0, "srcs": []}

    def current() -> int:
        try:
            return int(control.read_text().strip() or 0) % len(videos)
        except (OSError, ValueError):
            return 0

    def push() -> bool:
        frames = videos[current()]
        data = frames[state["n"] % len(frames)]
        for src in list(state["srcs"]):
            buf = Gst.Buffer.new_wrapped(data)
            buf.pts = buf.dts = state["n"] * period_ns
            buf.duration = period_ns
            if src.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                state["srcs"].remove(src)
        state["n"] += 1
        return True

    def configure(_factory: object, media: GstRtspServer.RTSPMedia) -> None:
        src = media.get_element().get_child_by_name("src")
        state["srcs"].append(src)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        "( appsrc name=src is-live=true format=time "
        f"caps=image/jpeg,framerate={args.fps}/1 ! jpegdec ! videoconvert ! x264enc "
        f"tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} ! "
        "rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(True)
    factory.connect("media-configure", configure)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on port {args.port}")
    GLib.timeout_add(1000 // args.fps, push)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
