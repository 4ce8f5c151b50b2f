"""A simulated camera: unlimited, correlated, realistic frames from a real photo or video.

What a fixed camera's stream looks like to a drift monitor is mostly *natural
variation*: the view wanders a little, light changes over the day, things pass
in front of the lens, the sensor is noisy. A detector calibrated on shuffled
frames meets none of that. :class:`SimulatedCamera` reproduces it around a real
scene (see :mod:`producers.scenes`):

- a 4:3 crop window (``zoom_range`` of the largest 4:3 window, 60-80% by
  default) whose centre follows a slow, smooth random walk (an
  Ornstein-Uhlenbeck velocity, ~0.7 output px/frame) and whose size drifts
  slowly, plus small per-frame jitter;
- a gentle day/night cycle (gain +-15% and a slight colour-temperature swing,
  period of thousands of frames, or ``lighting_period_s`` seconds of stream
  time: 86,400 for a real day);
- ``mount="fixed"``: a camera bolted to a wall instead of a wandering view --
  the crop window stays where it started and only sways (a mean-reverting
  offset of ``sway_px`` output pixels, correlation time ``sway_s`` seconds:
  wind, a mast warming in the sun) with the same per-frame jitter;
- occasional passing occluders: a dark, soft-edged blob crossing the frame for
  a few dozen frames;
- Gaussian sensor noise (sigma 2 grey levels);
- with a video scene (``vtest`` or ``video:<path>``), the real video plays
  forward then backward (ping-pong) under the same crop walk.

Everything is deterministic per ``seed``; the drift (if any) draws from its own
random stream, so a drifted camera and a clean one with the same seed show the
same frames before the onset and the same motion after it. Each frame's meta
records the true drift state (``drift``, ``drift_onset``, ``drift_active``).

Examples
--------
>>> cam = SimulatedCamera("chelsea", seed=1, drift=DriftSpec("brightness", onset=3))
>>> frames = list(cam.frames(5))
>>> [f.meta["drift_active"] for f in frames]
['0', '0', '0', '1', '1']
>>> frames[0].rgb.shape, frames[0].rgb.dtype
((240, 320, 3), dtype('uint8'))
>>> bool(frames[4].rgb.mean() < 0.8 * frames[2].rgb.mean())
True
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from driftline.errors import ConfigError, UndecodableImage
from producers.drift_injection import OPTICAL_KINDS, DriftSpec, apply_drift, drift_meta
from producers.drift_injection import rotation_params as _rotation_params
from producers.scenes import (
    SIM_EXTRA,
    is_video_scene,
    list_scenes,
    load_scene,
    photo_scenes,
    resolve_video,
)
from producers.sources import encode_jpeg

__all__ = ["SimFrame", "SimulatedCamera", "camera_fleet"]


@dataclass(frozen=True, slots=True)
class SimFrame:
    """One simulated frame: its index in the stream, RGB pixels and string annotations."""

    index: int
    rgb: np.ndarray
    meta: dict[str, str] = field(default_factory=dict)

    def jpeg(self, quality: int = 90) -> bytes:
        """The frame JPEG-encoded (what a real camera would publish)."""
        return encode_jpeg(self.rgb, quality)


# --------------------------------------------------------------------------- sources


def _prescale_factor(width: int, height: int, out_w: int, out_h: int, zmax: float) -> float:
    # Downscale once so that the widest crop is at most 1.25x the output: bilinear
    # warping from a much larger image would alias (shimmering fake noise).
    win_w = min(width, height * out_w / out_h)
    return min(1.0, 1.25 * out_w / (zmax * win_w))


def _resize(img: np.ndarray, factor: float, fast: bool = False) -> np.ndarray:
    if factor >= 0.999:
        return img
    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    # INTER_AREA at a non-integer factor costs ~2 ms on a 768x576 video frame, more
    # than the rest of the frame; for mild factors (>= 0.5) bilinear aliases little.
    interp = cv2.INTER_LINEAR if fast and factor >= 0.5 else cv2.INTER_AREA
    return cv2.resize(img, size, interpolation=interp)


class _PhotoSource:
    def __init__(self, rgb: np.ndarray, out_w: int, out_h: int, zmax: float) -> None:
        h, w = rgb.shape[:2]
        self.image = np.ascontiguousarray(_resize(rgb, _prescale_factor(w, h, out_w, out_h, zmax)))
        self.height, self.width = self.image.shape[:2]

    def frame(self, index: int) -> tuple[np.ndarray, int]:
        return self.image, -1


class _VideoSource:
    """Ping-pong playback of a video file with bounded memory.

    Frames are decoded in chunks of ``chunk`` frames (a seek plus sequential
    reads: opencv's seek is frame-exact but costs 15-60 ms, so backward play seeks
    once per chunk, not per frame) and a few chunks are kept, prescaled.
    """

    def __init__(
        self, path: Path, out_w: int, out_h: int, zmax: float, fps: float, chunk: int = 48
    ) -> None:
        self.path = path
        self.cap = cv2.VideoCapture(str(path))
        if not self.cap.isOpened():
            raise UndecodableImage(f"cannot open video {path}")
        self.count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        src_fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.step = (src_fps / fps) if src_fps > 0 else 1.0
        ok, first = self.cap.read()
        if not ok or first is None:
            raise UndecodableImage(f"cannot decode a frame of video {path}")
        self.next_pos = 1
        fh, fw = first.shape[:2]
        self.factor = _prescale_factor(fw, fh, out_w, out_h, zmax)
        if self.count <= 0:
            self.count = 10**9  # unknown: found at the first failed read
        self.chunk = chunk
        self.cache: OrderedDict[int, list[np.ndarray]] = OrderedDict()
        small = self._prep(first)
        self.height, self.width = small.shape[:2]

    def _prep(self, bgr: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(_resize(bgr, self.factor, fast=True), cv2.COLOR_BGR2RGB)

    def _load_chunk(self, c: int) -> list[np.ndarray]:
        start = c * self.chunk
        if self.next_pos != start:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        frames: list[np.ndarray] = []
        for _ in range(min(self.chunk, self.count - start)):
            ok, bgr = self.cap.read()
            if not ok or bgr is None:
                # The container's frame count was too high: the real end is here.
                self.count = start + len(frames)
                break
            frames.append(self._prep(bgr))
        self.next_pos = start + len(frames)
        return frames

    def _position(self, index: int) -> int:
        n = self.count
        if n <= 1:
            return 0
        p = int(index * self.step) % (2 * n - 2)
        return p if p < n else 2 * n - 2 - p

    def frame(self, index: int) -> tuple[np.ndarray, int]:
        for _ in range(3):  # the count may shrink once when the real end is found
            p = self._position(index)
            c = p // self.chunk
            frames = self.cache.get(c)
            if frames is None:
                frames = self._load_chunk(c)
                self.cache[c] = frames
                while len(self.cache) > 3:
                    self.cache.popitem(last=False)
            else:
                self.cache.move_to_end(c)
            k = p - c * self.chunk
            if k < len(frames):
                return frames[k], p
            self.cache.pop(c, None)
        raise UndecodableImage(f"video {self.path} yielded no frame at position {p}")


def _make_source(
    scene: str | np.ndarray,
    out_w: int,
    out_h: int,
    zmax: float,
    fps: float,
    video_path: str | os.PathLike[str] | None,
) -> _PhotoSource | _VideoSource:
    if isinstance(scene, np.ndarray):
        if scene.dtype != np.uint8 or scene.ndim != 3 or scene.shape[2] != 3:
            raise ConfigError(
                "scene", f"an array scene must be RGB uint8 HxWx3, got {scene.dtype} {scene.shape}"
            )
        return _PhotoSource(scene, out_w, out_h, zmax)
    if is_video_scene(scene):
        return _VideoSource(resolve_video(scene, video_path), out_w, out_h, zmax, fps)
    return _PhotoSource(load_scene(scene, video_path), out_w, out_h, zmax)


# --------------------------------------------------------------------------- occluders


@dataclass(slots=True)
class _Occluder:
    start: int
    duration: int
    direction: int
    y_center: float
    alpha: np.ndarray  # bh x bw x 1 float32 opacity
    color: np.ndarray  # 3 float32

    def box(self, index: int, width: int) -> tuple[int, float]:
        bw = self.alpha.shape[1]
        t = (index - self.start) / self.duration
        if self.direction < 0:
            t = 1.0 - t
        return bw, -bw + t * (width + bw)


def _new_occluder(
    rng: np.random.Generator, index: int, width: int, height: int,
    frames: tuple[int, int] = (20, 61),
) -> _Occluder:
    bh = int(rng.uniform(0.35, 0.8) * height)
    bw = int(rng.uniform(0.12, 0.3) * width)
    blob = np.zeros((bh, bw), np.float32)
    opacity = float(rng.uniform(0.55, 0.9))
    cv2.ellipse(blob, (bw // 2, bh // 2), (int(bw * 0.38), int(bh * 0.42)), 0, 0, 360, opacity, -1)
    blob = np.asarray(cv2.GaussianBlur(blob, (0, 0), max(1.5, 0.08 * bw)), np.float32)
    base = rng.uniform(10, 55)
    color = np.array([base, base, base], np.float32) * rng.uniform(0.85, 1.15, 3).astype(np.float32)
    return _Occluder(
        start=index,
        duration=int(rng.integers(*frames)),
        direction=1 if rng.random() < 0.5 else -1,
        y_center=float(rng.uniform(0.35, 0.75)),
        alpha=blob[:, :, None],
        color=color,
    )


# --------------------------------------------------------------------------- the camera


class SimulatedCamera:
    """Endless correlated frames of a real scene, with optional injected drift.

    Parameters
    ----------
    scene
        A scene name from :func:`producers.scenes.list_scenes` (``vtest`` or
        ``video:<path>`` for a real video), or an RGB uint8 array.
    seed
        Seeds every random choice; the same seed gives the same frames.
    size
        Output ``(width, height)``.
    fps
        Frame rate of the simulated camera (sets how fast a video scene plays).
    drift
        The injected change, or None.
    noise_sigma
        Gaussian sensor noise in grey levels.
    pan_speed
        Typical speed of the crop window's walk, in output pixels per frame.
    zoom_range
        Crop width as a fraction of the largest 4:3 window of the scene.
    jitter
        Standard deviation of the per-frame shake, in output pixels.
    lighting_period, lighting_amplitude
        Day/night cycle: mean period in frames and relative gain amplitude.
    lighting_period_s
        The cycle's period in seconds of stream time (frame ``i`` is at
        ``i / fps`` s) instead of ``lighting_period`` frames, exactly (no random
        stretch): 86,400 is a real day.
    mount, sway_px, sway_s
        ``"wander"`` (default): the crop window walks over the scene as
        described above (a slowly panning view). ``"fixed"``: it stays at its
        start and sways by a mean-reverting offset (standard deviation
        ``sway_px`` output pixels, correlation time ``sway_s`` seconds); the
        zoom stays fixed. What a fixed surveillance camera does.
    occluder_rate
        Probability per frame that an occluder starts crossing (when none is).
    occluder_frames
        ``(low, high)``: an occluder crosses in ``low`` to ``high - 1`` frames
        (default 2-6 s at 10 fps; ``(100, 401)``: passers-by lingering 10-40 s).
    video_path
        Where ``vtest.avi`` is (else ``$DRIFTLINE_VIDEO_PATH`` or the defaults).
    name
        Recorded as ``meta["camera"]``; defaults to ``sim-<scene>-<seed>``.

    Notes
    -----
    Drift is applied where it happens physically: ``blur``, ``defocus``,
    ``dirty_lens`` and ``occlusion`` in front of the sensor (before lighting and
    noise), ``rotation`` by turning the crop window itself (real pixels, no
    borders), the rest on the finished frame. ``scene_change`` switches the source
    to ``spec.target`` (or another installed scene) at the onset, cross-fading over
    the ramp; ``frozen`` repeats the frame from the onset on (with a ramp, frames
    repeat with probability rising to 1).
    """

    def __init__(
        self,
        scene: str | np.ndarray,
        seed: int = 0,
        size: tuple[int, int] = (320, 240),
        fps: float = 10.0,
        drift: DriftSpec | None = None,
        *,
        noise_sigma: float = 2.0,
        pan_speed: float = 0.7,
        zoom_range: tuple[float, float] = (0.6, 0.8),
        jitter: float = 0.25,
        lighting_period: float = 4000.0,
        lighting_amplitude: float = 0.15,
        occluder_rate: float = 1 / 300,
        occluder_frames: tuple[int, int] = (20, 61),
        video_path: str | os.PathLike[str] | None = None,
        name: str | None = None,
        lighting_period_s: float | None = None,
        mount: str = "wander",
        sway_px: float = 1.5,
        sway_s: float = 60.0,
    ) -> None:
        out_w, out_h = size
        if mount not in ("wander", "fixed"):
            raise ConfigError("mount", f"mount must be 'wander' or 'fixed', got {mount!r}")
        if lighting_period_s is not None and not lighting_period_s > 0:
            raise ConfigError("lighting_period_s", f"must be > 0, got {lighting_period_s}")
        if not (sway_px >= 0 and sway_s > 0):
            raise ConfigError("sway_px", f"need sway_px >= 0 and sway_s > 0, got {sway_px}, "
                              f"{sway_s}")
        if out_w < 16 or out_h < 16:
            raise ConfigError("size", f"frame size must be at least 16x16, got {size}")
        if not fps > 0:
            raise ConfigError("fps", f"fps must be > 0, got {fps}")
        zmin, zmax = zoom_range
        if not 0.05 <= zmin <= zmax <= 1.0:
            raise ConfigError("zoom_range", f"need 0.05 <= min <= max <= 1, got {zoom_range}")
        if drift is not None and not isinstance(drift, DriftSpec):
            raise ConfigError("drift", f"expected a DriftSpec, got {type(drift).__name__}")
        self.size = (int(out_w), int(out_h))
        self.fps = float(fps)
        self.seed = int(seed)
        self.drift = drift
        self.scene_name = scene if isinstance(scene, str) else "array"
        self.name = name or f"sim-{self.scene_name}-{self.seed}"
        self.noise_sigma = float(noise_sigma)
        self.zoom_range = (float(zmin), float(zmax))
        self.jitter = float(jitter)
        self.occluder_rate = float(occluder_rate)
        lo, hi = occluder_frames
        if not 1 <= lo < hi:
            raise ConfigError("occluder_frames", f"need 1 <= low < high, got {occluder_frames}")
        self.occluder_frames = (int(lo), int(hi))
        self._video_path = video_path
        self._source = _make_source(scene, out_w, out_h, zmax, self.fps, video_path)

        walk_ss, noise_ss, occ_ss, drift_ss = np.random.SeedSequence(self.seed).spawn(4)
        self._walk_rng = np.random.default_rng(walk_ss)
        self._occ_rng = np.random.default_rng(occ_ss)
        self._drift_rng = np.random.default_rng(drift_ss)
        noise_rng = np.random.default_rng(noise_ss)

        # Smooth random walk: OU velocity with stationary per-axis sd chosen so the
        # mean speed (|v| of a 2-D Gaussian = 1.25 sd) is ``pan_speed``.
        self._rho = 0.98
        self._v_sd = pan_speed / 1.2533
        self._v_sigma = self._v_sd * math.sqrt(1 - self._rho**2)
        self._rho_z = 0.995
        self._vz_sigma = 0.0004 * math.sqrt(1 - self._rho_z**2)
        rng = self._walk_rng
        self._z = float(rng.uniform(zmin, zmax))
        self._vz = 0.0
        self._cx, self._cy = 0.5, 0.5
        self._cx = float(rng.uniform(*self._center_bounds(self._source, self._z, 0)))
        self._cy = float(rng.uniform(*self._center_bounds(self._source, self._z, 1)))
        self._vx, self._vy = (float(v) for v in rng.normal(0.0, self._v_sd, 2))
        self._period = float(lighting_period) * float(rng.uniform(0.75, 1.25))
        if lighting_period_s is not None:
            self._period = float(lighting_period_s) * self.fps
        self.mount = mount
        # Fixed mount: the start of the walk is the mount point; the sway is an
        # AR(1) offset in output pixels with the given correlation time.
        self._anchor = (self._cx, self._cy)
        self._sway = (0.0, 0.0)
        self._sway_a = math.exp(-1.0 / (float(sway_s) * self.fps))
        self._sway_sigma = float(sway_px) * math.sqrt(1.0 - self._sway_a**2)
        self._phase = float(rng.uniform(0, 2 * math.pi))
        self._light_amp = float(lighting_amplitude)

        # Sensor noise bank: drawing 230k normals per frame costs ~2 ms, more than
        # everything else together; random views into a few pre-drawn fields are
        # statistically the same noise at ~0.1 ms.
        pad = 16
        self._noise_rng = noise_rng
        self._noise_pad = pad
        self._noise_bank = noise_rng.standard_normal(
            (6, out_h + pad, out_w + pad, 3), dtype=np.float32
        ) * np.float32(self.noise_sigma)

        self._occluder: _Occluder | None = None
        self._alt_source: _PhotoSource | _VideoSource | None = None
        self._alt_name: str | None = None
        self._frozen: np.ndarray | None = None
        self._index = 0

    # ------------------------------------------------------------------ walk

    def _center_bounds(
        self, src: _PhotoSource | _VideoSource, z: float, axis: int
    ) -> tuple[float, float]:
        out_w, out_h = self.size
        win_w = min(src.width, src.height * out_w / out_h)
        if axis == 0:
            half = z * win_w / 2 / src.width
        else:
            half = z * win_w * out_h / out_w / 2 / src.height
        half = min(half, 0.5)
        return half, 1.0 - half

    def _step_walk(self) -> tuple[float, float]:
        rng = self._walk_rng
        src = self._source
        out_w = self.size[0]
        win_w = min(src.width, src.height * out_w / self.size[1])
        k = self._z * win_w / out_w  # source px per output px
        nx, ny, nz, jx, jy = rng.standard_normal(5)
        if self.mount == "fixed":
            a, sd = self._sway_a, self._sway_sigma
            sx, sy = a * self._sway[0] + sd * nx, a * self._sway[1] + sd * ny
            self._sway = (sx, sy)
            self._cx = self._anchor[0] + sx * k / src.width
            self._cy = self._anchor[1] + sy * k / src.height
            return float(jx) * self.jitter, float(jy) * self.jitter
        self._vx = self._rho * self._vx + self._v_sigma * nx
        self._vy = self._rho * self._vy + self._v_sigma * ny
        self._cx += self._vx * k / src.width
        self._cy += self._vy * k / src.height
        # Reflect at the edges so the window never leaves the scene.
        for axis in (0, 1):
            lo, hi = self._center_bounds(src, self._z, axis)
            c = self._cx if axis == 0 else self._cy
            v = self._vx if axis == 0 else self._vy
            if c < lo:
                c, v = min(hi, 2 * lo - c), abs(v)
            elif c > hi:
                c, v = max(lo, 2 * hi - c), -abs(v)
            if axis == 0:
                self._cx, self._vx = c, v
            else:
                self._cy, self._vy = c, v
        zmin, zmax = self.zoom_range
        self._vz = self._rho_z * self._vz + self._vz_sigma * nz
        self._z += self._vz
        if self._z < zmin:
            self._z, self._vz = min(zmax, 2 * zmin - self._z), abs(self._vz)
        elif self._z > zmax:
            self._z, self._vz = max(zmin, 2 * zmax - self._z), -abs(self._vz)
        return float(jx) * self.jitter, float(jy) * self.jitter

    def _render(
        self, src: _PhotoSource | _VideoSource, index: int, jit: tuple[float, float], rot: float
    ) -> tuple[np.ndarray, int]:
        out_w, out_h = self.size
        image, pos = src.frame(index)
        win_w = min(src.width, src.height * out_w / out_h)
        k = self._z * win_w / out_w
        lo_x, hi_x = self._center_bounds(src, self._z, 0)
        lo_y, hi_y = self._center_bounds(src, self._z, 1)
        cx = min(max(self._cx, lo_x), hi_x) * src.width - 0.5
        cy = min(max(self._cy, lo_y), hi_y) * src.height - 0.5
        deg, sx, sy = _rotation_params(rot)
        if rot > 0:
            cx += sx * out_w * k
            cy += sy * out_h * k
        theta = math.radians(deg)
        cos, sin = math.cos(theta) * k, math.sin(theta) * k
        ox, oy = (out_w - 1) / 2 - jit[0], (out_h - 1) / 2 - jit[1]
        m = np.array(
            [[cos, -sin, cx - (cos * ox - sin * oy)], [sin, cos, cy - (sin * ox + cos * oy)]],
            np.float64,
        )
        frame = cv2.warpAffine(
            image,
            m,
            (out_w, out_h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        return frame, pos

    # ------------------------------------------------------------------ effects

    def _occlude(self, frame: np.ndarray, index: int) -> bool:
        out_w, out_h = self.size
        occ = self._occluder
        if occ is not None and index >= occ.start + occ.duration:
            occ = self._occluder = None
        if occ is None:
            if self._occ_rng.random() >= self.occluder_rate:
                return False
            occ = self._occluder = _new_occluder(self._occ_rng, index, out_w, out_h,
                                                 self.occluder_frames)
        bw, x = occ.box(index, out_w)
        bh = occ.alpha.shape[0]
        x0 = round(x)
        y0 = round(occ.y_center * out_h - bh / 2)
        fx0, fy0 = max(0, x0), max(0, y0)
        fx1, fy1 = min(out_w, x0 + bw), min(out_h, y0 + bh)
        if fx1 <= fx0 or fy1 <= fy0:
            return True
        a = occ.alpha[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
        region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
        region += (occ.color - region) * a
        frame[fy0:fy1, fx0:fx1] = region.astype(np.uint8)
        return True

    def _sensor(self, frame: np.ndarray, index: int) -> np.ndarray:
        phase = 2 * math.pi * index / self._period + self._phase
        g = 1.0 + self._light_amp * math.sin(phase)
        warm = 0.2 * self._light_amp * math.sin(phase)  # warmer by day, cooler by night
        gains = np.array([g * (1 + warm), g, g * (1 - warm)], np.float32)
        f = frame.astype(np.float32)
        f *= gains
        if self.noise_sigma > 0:
            pad = self._noise_pad
            j, dy, dx = self._noise_rng.integers(0, (6, pad, pad))
            h, w = frame.shape[:2]
            f += self._noise_bank[j, dy : dy + h, dx : dx + w]
        np.clip(f, 0, 255, out=f)
        return f.astype(np.uint8)

    def _scene_change_source(self) -> _PhotoSource | _VideoSource:
        if self._alt_source is None:
            spec = self.drift
            assert spec is not None
            target = spec.target
            if target is None:
                others = [s for s in photo_scenes() if s != self.scene_name]
                if not others:
                    raise ConfigError(
                        "drift", f"scene_change needs a second installed scene: {SIM_EXTRA}"
                    )
                target = others[int(self._drift_rng.integers(len(others)))]
            out_w, out_h = self.size
            self._alt_name = target
            self._alt_source = _make_source(
                target, out_w, out_h, self.zoom_range[1], self.fps, self._video_path
            )
        return self._alt_source

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[SimFrame]:
        return self

    def __next__(self) -> SimFrame:
        index = self._index
        self._index += 1
        spec = self.drift
        s = spec.strength(index) if spec is not None else 0.0
        kind = spec.kind if spec is not None else "none"
        jit = self._step_walk()  # the walk advances even on frozen frames

        meta = {"camera": self.name, "scene": self.scene_name, "camera_seed": str(self.seed)}
        meta.update(drift_meta(spec, index))

        if (
            kind == "frozen"
            and s > 0
            and self._frozen is not None
            and (s >= 1.0 or self._drift_rng.random() < s)
        ):
            meta["occluder"] = "0"
            return SimFrame(index, self._frozen.copy(), meta)

        frame, pos = self._render(self._source, index, jit, s if kind == "rotation" else 0.0)
        if kind == "scene_change" and s > 0:
            alt_frame, pos = self._render(self._scene_change_source(), index, jit, 0.0)
            w = min(1.0, s)
            frame = alt_frame if w >= 1.0 else cv2.addWeighted(frame, 1 - w, alt_frame, w, 0)
            meta["scene"] = self._alt_name or meta["scene"]
        if pos >= 0:
            meta["video_frame"] = str(pos)
        meta["occluder"] = "1" if self._occlude(frame, index) else "0"
        if spec is not None and kind in OPTICAL_KINDS and kind != "rotation":
            frame = apply_drift(frame, spec, index, self._drift_rng)
        frame = self._sensor(frame, index)
        if spec is not None and kind not in OPTICAL_KINDS:
            frame = apply_drift(frame, spec, index, self._drift_rng)
        if kind == "frozen" and s > 0:
            self._frozen = frame.copy()
        return SimFrame(index, frame, meta)

    def frames(self, n: int) -> Iterator[SimFrame]:
        """The next ``n`` frames (the camera keeps its position between calls)."""
        for _ in range(n):
            yield next(self)

    def skip(self, n: int) -> None:
        """Advance ``n`` frames: they are rendered and dropped, so the walk state stays exact."""
        for _ in range(n):
            next(self)

    @property
    def index(self) -> int:
        """Index of the next frame."""
        return self._index


def camera_fleet(
    n: int,
    seed: int = 0,
    *,
    drifts: Sequence[DriftSpec | None] | None = None,
    include_video: bool = False,
    video_path: str | os.PathLike[str] | None = None,
    **kwargs: object,
) -> list[SimulatedCamera]:
    """``n`` cameras with distinct scenes (while ``n`` <= scenes installed) and seeds.

    Camera ``i`` is named ``cam-<i>``, has seed ``seed * 1000 + i`` and
    ``drifts[i]`` if given; scenes are taken in :func:`producers.scenes.list_scenes`
    order rotated by ``seed`` and reused (with different seeds) beyond that.
    ``include_video`` adds the ``vtest`` scene when its file is available.

    Examples
    --------
    >>> fleet = camera_fleet(3, seed=0)
    >>> [c.name for c in fleet], len({c.scene_name for c in fleet})
    (['cam-0', 'cam-1', 'cam-2'], 3)
    """
    if n < 1:
        raise ConfigError("n", f"a fleet needs at least one camera, got {n}")
    if drifts is not None and len(drifts) != n:
        raise ConfigError("drifts", f"expected {n} drift specs (or None), got {len(drifts)}")
    names = list_scenes(video_path) if include_video else photo_scenes()
    if not names:
        raise ConfigError("scene", "no scenes installed (scikit-image / scikit-learn missing)")
    shift = seed % len(names)
    names = names[shift:] + names[:shift]
    return [
        SimulatedCamera(
            names[i % len(names)],
            seed=seed * 1000 + i,
            drift=drifts[i] if drifts is not None else None,
            video_path=video_path,
            name=f"cam-{i}",
            **kwargs,  # type: ignore[arg-type]
        )
        for i in range(n)
    ]
