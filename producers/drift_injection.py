"""Injectable drift: what goes wrong with a camera, a model or a deployment, on purpose.

A :class:`DriftSpec` names a kind of change, the frame index where it starts
(``onset``), how many frames it takes to reach full strength (``ramp``: 0 is a
sudden change, ``n`` a linear ramp over ``n`` frames) and how strong it is at
full strength (``severity``; 1 is the calibrated default described per kind).
:func:`apply_drift` applies a pixel kind to one RGB frame; frames before the
onset come back unchanged.

Kinds and what severity 1 means:

==================  ====================================================================
``blur``            Gaussian blur, sigma 2 px (an out-of-focus or vibrating camera)
``defocus``         disk (bokeh) blur of radius 4 px (focus ring moved)
``brightness``      40% darker (iris closed, dusk, a dirty housing)
``exposure``        overexposed: gain 1.8 and +30 levels, highlights clip
``contrast``        contrast reduced to 40% around the mean (fog, haze)
``gaussian_noise``  additive Gaussian noise, sigma 0.08 x 255 (low light, high gain)
``salt_pepper``     5% of pixels stuck black or white (bit errors, dead pixels)
``jpeg``            re-encoded at JPEG quality 10 (a bandwidth-saving encoder setting)
``color_cast``      R x 1.3, B x 0.7 (white balance lost)
``occlusion``       black patch over 30% of the frame (something in front of the lens)
``dirty_lens``      blurred, milky semi-transparent smudges
``rotation``        camera bumped: view rotated 8 degrees and shifted
``resolution``      downscaled 4x then upscaled back (a lower-resolution stream)
``scene_change``    the camera was moved: another scene (the camera swaps its source)
``frozen``          the frame stops changing (a stuck encoder; the camera repeats frames)
``smudge``          a soft-edged region over 40% of the lens blurred (Gaussian sigma 5 px):
                    a greasy fingerprint; the rest of the frame stays sharp
``vignetting``      radial fall-off: the corners darkened to 25%, the centre untouched
``motion_blur``     horizontal motion blur over 9 px (a loose mount, wind)
``haze``            60% blend towards a light-grey airlight (fog, a milky dome)
``class_mix``       the world changed, not the pixels: recorded in meta only
``model_version``   a new model was deployed: recorded in meta only
==================  ====================================================================

``scene_change`` and ``frozen`` need memory of other frames, so
:func:`apply_drift` leaves pixels unchanged for them and
:class:`producers.simulated_camera.SimulatedCamera` implements them;
``class_mix`` and ``model_version`` change predictions, not pixels.

Examples
--------
>>> import numpy as np
>>> spec = DriftSpec("brightness", onset=10)
>>> rgb = np.full((24, 32, 3), 200, np.uint8)
>>> rng = np.random.default_rng(0)
>>> int(apply_drift(rgb, spec, 9, rng).mean()), int(apply_drift(rgb, spec, 10, rng).mean())
(200, 120)
>>> DriftSpec("brightness", onset=10, ramp=100).strength(59)
0.5
>>> drift_meta(spec, 12)
{'drift': 'brightness', 'drift_onset': '10', 'drift_active': '1', 'drift_strength': '1.000'}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

PIXEL_KINDS: tuple[str, ...] = (
    "blur",
    "defocus",
    "brightness",
    "exposure",
    "contrast",
    "gaussian_noise",
    "salt_pepper",
    "jpeg",
    "color_cast",
    "occlusion",
    "dirty_lens",
    "rotation",
    "resolution",
    "smudge",
    "vignetting",
    "motion_blur",
    "haze",
)
"""Kinds that :func:`apply_drift` applies to a single frame's pixels."""

STATEFUL_KINDS: tuple[str, ...] = ("scene_change", "frozen")
"""Pixel kinds that need other frames; the simulated camera implements them."""

META_KINDS: tuple[str, ...] = ("class_mix", "model_version")
"""Kinds that change predictions, not pixels: recorded in frame meta only."""

KINDS: tuple[str, ...] = PIXEL_KINDS + STATEFUL_KINDS + META_KINDS
"""Every valid ``DriftSpec.kind``."""

OPTICAL_KINDS: frozenset[str] = frozenset(
    {"blur", "defocus", "dirty_lens", "occlusion", "rotation", "smudge", "vignetting",
     "motion_blur", "haze"}
)
"""Kinds that happen in front of the sensor: the camera applies them before sensor noise."""

MAX_SEVERITY = 3.0


@dataclass(frozen=True, slots=True)
class DriftSpec:
    """One injected change: ``kind`` from ``onset`` on, reaching ``severity`` after ``ramp`` frames.

    Parameters
    ----------
    kind
        One of :data:`KINDS`.
    onset
        First frame index (0-based) affected.
    ramp
        0 for a sudden change; otherwise strength grows linearly and reaches
        ``severity`` at frame ``onset + ramp - 1``.
    severity
        Strength at full onset, in (0, 3]; 1 is the calibrated default.
    target
        ``scene_change`` only: the scene switched to (default: the camera picks another).

    Raises
    ------
    ValueError
        Unknown kind (the message lists the valid ones) or out-of-range numbers.

    Examples
    --------
    >>> DriftSpec("sparkles", onset=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown drift kind 'sparkles'; valid kinds: blur, defocus, brightness, ...
    """

    kind: str
    onset: int
    ramp: int = 0
    severity: float = 1.0
    target: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown drift kind {self.kind!r}; valid kinds: {', '.join(KINDS)}")
        for name in ("onset", "ramp"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"drift {name} must be an int >= 0, got {value!r}")
        sev = self.severity
        if isinstance(sev, bool) or not isinstance(sev, int | float) or not math.isfinite(sev):
            raise ValueError(f"drift severity must be a finite number, got {sev!r}")
        if not 0.0 < sev <= MAX_SEVERITY:
            raise ValueError(f"drift severity must be in (0, {MAX_SEVERITY}], got {sev}")
        if self.target is not None and self.kind != "scene_change":
            raise ValueError("drift target is only meaningful for kind 'scene_change'")

    def active(self, index: int) -> bool:
        """True from the onset frame on."""
        return index >= self.onset

    def strength(self, index: int) -> float:
        """Effective severity at frame ``index``: 0 before onset, ramping linearly to ``severity``.

        Examples
        --------
        >>> s = DriftSpec("blur", onset=100, ramp=4, severity=2.0)
        >>> [s.strength(i) for i in (99, 100, 101, 103, 500)]
        [0.0, 0.5, 1.0, 2.0, 2.0]
        """
        if index < self.onset:
            return 0.0
        if self.ramp <= 0:
            return float(self.severity)
        return float(self.severity) * min(1.0, (index - self.onset + 1) / self.ramp)

    @classmethod
    def parse(cls, text: str) -> DriftSpec:
        """Parse ``kind@onset[:ramp[:severity[:target]]]``, e.g. ``blur@3000``, ``jpeg@5:2:0.5``.

        Examples
        --------
        >>> DriftSpec.parse("jpeg@500:200:0.5")
        DriftSpec(kind='jpeg', onset=500, ramp=200, severity=0.5, target=None)
        >>> DriftSpec.parse("scene_change@40:0:1:coffee").target
        'coffee'
        """
        kind, sep, rest = text.strip().partition("@")
        if not sep or not rest:
            raise ValueError(f"drift spec {text!r} must look like kind@onset[:ramp[:severity]]")
        parts = rest.split(":")
        if len(parts) > 4:
            raise ValueError(f"drift spec {text!r} has too many ':' fields")
        try:
            onset = int(parts[0])
            ramp = int(parts[1]) if len(parts) > 1 and parts[1] else 0
            severity = float(parts[2]) if len(parts) > 2 and parts[2] else 1.0
        except ValueError as exc:
            raise ValueError(f"drift spec {text!r}: {exc}") from exc
        target = parts[3] if len(parts) > 3 and parts[3] else None
        return cls(kind.strip(), onset, ramp, severity, target)


def drift_meta(spec: DriftSpec | None, index: int) -> dict[str, str]:
    """The frame-meta entries recording the true drift state at ``index`` (``none`` without drift).

    Examples
    --------
    >>> drift_meta(None, 5)
    {'drift': 'none', 'drift_onset': '-1', 'drift_active': '0', 'drift_strength': '0.000'}
    """
    if spec is None:
        return {
            "drift": "none",
            "drift_onset": "-1",
            "drift_active": "0",
            "drift_strength": "0.000",
        }
    return {
        "drift": spec.kind,
        "drift_onset": str(spec.onset),
        "drift_active": "1" if spec.active(index) else "0",
        "drift_strength": f"{spec.strength(index):.3f}",
    }


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0, 255, out=x).astype(np.uint8)


@lru_cache(maxsize=32)
def _disk_kernel(radius_tenths: int) -> np.ndarray:
    r = radius_tenths / 10.0
    n = math.ceil(r)
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1].astype(np.float32)
    # Anti-aliased edge so the blur grows smoothly with a gradual ramp.
    k = np.clip(r + 0.5 - np.sqrt(xx * xx + yy * yy), 0.0, 1.0)
    return k / k.sum()


@lru_cache(maxsize=16)
def _smudge_mask(height: int, width: int) -> np.ndarray:
    # Fixed smudges for a given frame size: a dirty lens does not move between frames.
    rng = np.random.default_rng(20240607)
    mask = np.zeros((height, width), np.float32)
    for _ in range(7):
        cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
        ax = rng.uniform(0.06, 0.18) * width
        ay = ax * rng.uniform(0.5, 1.2)
        ang = rng.uniform(0, 180)
        alpha = float(rng.uniform(0.5, 0.9))
        blob = np.zeros_like(mask)
        cv2.ellipse(blob, (int(cx), int(cy)), (int(ax), int(ay)), ang, 0, 360, alpha, -1)
        mask = np.maximum(mask, blob)
    sigma = max(2.0, 0.03 * width)
    blurred = np.asarray(cv2.GaussianBlur(mask, (0, 0), sigma), np.float32)
    return np.minimum(blurred, np.float32(0.85))[:, :, None]


@lru_cache(maxsize=16)
def smudge_region(height: int, width: int) -> np.ndarray:
    """The smudge's soft mask (H, W, 1) in [0, 1]: an ellipse over ~40% of the frame, left."""
    mask = np.zeros((height, width), np.float32)
    # pi * a * b = 0.4 * w * h with a = 0.4 w, b = 0.32 h.
    cv2.ellipse(mask, (round(0.32 * width), round(0.5 * height)),
                (round(0.4 * width), round(0.32 * height)), 0, 0, 360, 1.0, -1)
    soft = cv2.GaussianBlur(mask, (0, 0), max(2.0, 0.04 * width))
    return np.asarray(soft, np.float32)[:, :, None]


@lru_cache(maxsize=16)
def vignette_gain(height: int, width: int) -> np.ndarray:
    """Gain (H, W, 1) of full-strength vignetting: 1 at the centre, 0.25 in the corners."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xx - (width - 1) / 2) / ((width - 1) / 2 or 1)) ** 2 + (
        (yy - (height - 1) / 2) / ((height - 1) / 2 or 1)) ** 2
    r2 /= 2.0  # 1 in the corners
    return (1.0 - 0.75 * r2)[:, :, None].astype(np.float32)


@lru_cache(maxsize=8)
def _motion_kernel(length_tenths: int) -> np.ndarray:
    n = max(1, round(length_tenths / 10))
    k = np.zeros((n, n), np.float32)
    k[n // 2, :] = 1.0 / n
    return k


def occlusion_box(height: int, width: int, strength: float) -> tuple[int, int, int, int]:
    """The black patch ``(y0, y1, x0, x1)`` for occlusion: area ``0.3 * strength`` of the frame."""
    frac = math.sqrt(min(1.0, 0.3 * strength))
    h, w = round(frac * height), round(frac * width)
    y0 = min(round(0.25 * height), height - h)
    x0 = min(round(0.1 * width), width - w)
    return y0, y0 + h, x0, x0 + w


def rotation_params(strength: float) -> tuple[float, float, float]:
    """Rotation ``(degrees, shift_x_frac, shift_y_frac)`` of a bumped camera at ``strength``."""
    return 8.0 * strength, 0.06 * strength, 0.04 * strength


def _apply(rgb: np.ndarray, kind: str, s: float, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    if kind == "blur":
        return cv2.GaussianBlur(rgb, (0, 0), 2.0 * s)
    if kind == "defocus":
        return cv2.filter2D(rgb, -1, _disk_kernel(max(1, round(40 * s))))
    if kind == "brightness":
        return _to_u8(rgb.astype(np.float32) * max(0.0, 1.0 - 0.4 * s))
    if kind == "exposure":
        return _to_u8(rgb.astype(np.float32) * (1.0 + 0.8 * s) + 30.0 * s)
    if kind == "contrast":
        f = rgb.astype(np.float32)
        mean = float(f.mean())
        return _to_u8((f - mean) * max(0.0, 1.0 - 0.6 * s) + mean)
    if kind == "gaussian_noise":
        noise = rng.standard_normal(rgb.shape, dtype=np.float32)
        noise *= np.float32(0.08 * 255.0 * s)
        return _to_u8(rgb.astype(np.float32) + noise)
    if kind == "salt_pepper":
        p = min(1.0, 0.05 * s)
        u = rng.random((h, w), dtype=np.float32)
        out = rgb.copy()
        out[u < p / 2] = 0
        out[(u >= p / 2) & (u < p)] = 255
        return out
    if kind == "jpeg":
        quality = int(np.clip(round(90 - 80 * s), 1, 95))
        ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is None:  # pragma: no cover - cv2 round-trips any uint8 HxWx3
            raise RuntimeError("JPEG re-encoding failed")
        return np.ascontiguousarray(decoded[:, :, ::-1])
    if kind == "color_cast":
        gains = np.array([1.0 + 0.3 * s, 1.0, max(0.0, 1.0 - 0.3 * s)], np.float32)
        return _to_u8(rgb.astype(np.float32) * gains)
    if kind == "occlusion":
        y0, y1, x0, x1 = occlusion_box(h, w, s)
        out = rgb.copy()
        out[y0:y1, x0:x1] = 0
        return out
    if kind == "dirty_lens":
        alpha = _smudge_mask(h, w) * np.float32(min(1.0, s))
        f = rgb.astype(np.float32)
        # Smudges scatter light: locally blurred and milky (lifted towards light grey).
        haze = cv2.GaussianBlur(rgb, (0, 0), max(2.0, 0.03 * w)).astype(np.float32)
        haze = haze * 0.5 + 190.0 * 0.5
        return _to_u8(f * (1.0 - alpha) + haze * alpha)
    if kind == "rotation":
        deg, sx, sy = rotation_params(s)
        m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), deg, 1.0 + 0.12 * min(1.0, s))
        m[0, 2] += sx * w
        m[1, 2] += sy * h
        return cv2.warpAffine(
            rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
    if kind == "resolution":
        factor = 1.0 + 3.0 * s
        small = cv2.resize(
            rgb,
            (max(1, round(w / factor)), max(1, round(h / factor))),
            interpolation=cv2.INTER_AREA,
        )
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if kind == "smudge":
        alpha = smudge_region(h, w)
        blurred = cv2.GaussianBlur(rgb, (0, 0), 5.0 * s).astype(np.float32)
        return _to_u8(rgb.astype(np.float32) * (1.0 - alpha) + blurred * alpha)
    if kind == "vignetting":
        gain = 1.0 - min(1.0, s) * (1.0 - vignette_gain(h, w))
        return _to_u8(rgb.astype(np.float32) * gain)
    if kind == "motion_blur":
        return cv2.filter2D(rgb, -1, _motion_kernel(round(90 * s)))
    if kind == "haze":
        a = min(1.0, 0.6 * s)
        return _to_u8(rgb.astype(np.float32) * (1.0 - a) + 200.0 * a)
    return rgb  # stateful and meta-only kinds: pixels unchanged here


def apply_drift(
    rgb: np.ndarray, spec: DriftSpec | None, index: int, rng: np.random.Generator
) -> np.ndarray:
    """Frame ``index`` with ``spec`` applied; unchanged (the same array) before the onset.

    Parameters
    ----------
    rgb
        RGB uint8 HxWx3 frame; never modified in place.
    spec
        The drift, or None for no drift.
    index
        The frame's index in its stream (compared with ``spec.onset``).
    rng
        Source of per-frame randomness (noise, salt-and-pepper); fixed patterns
        (occlusion patch, smudges) do not use it so they stay put between frames.

    Returns
    -------
    numpy.ndarray
        A new RGB uint8 array of the same shape when the drift is active and
        changes pixels; ``rgb`` itself otherwise (``scene_change``, ``frozen``,
        ``class_mix``, ``model_version`` leave pixels to the camera / predictions).
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 HxWx3 frame, got {rgb.dtype} {rgb.shape}")
    if spec is None:
        return rgb
    s = spec.strength(index)
    if s <= 0.0:
        return rgb
    return _apply(rgb, spec.kind, s, rng)
