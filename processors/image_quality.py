"""Cheap per-frame image-quality signals, computed once per decoded frame.

Every value is a plain float under a stable key; the monitor feeds each one
to its detectors as the signal ``quality.<key>``:

==================  ==========================================================
``brightness``      mean luma (BT.601), 0-255
``contrast``        standard deviation of luma
``sharpness``       ``log1p`` of the variance of the 3x3 Laplacian of luma
                    (blur drives it down; log makes it additive-ish)
``saturation``      mean HSV saturation, 0-1 (0 for a grey image)
``colourfulness``   Hasler & Suesstrunk (2003) M3, on 0-255 RGB
``noise``           Immerkaer (1996) fast noise sigma estimate, grey levels
``warmth``          white balance, red vs blue: ``ln((mean R + 1) / (mean B + 1))``
                    (a colour cast R x1.3 / B x0.7 moves it by +0.62; a wandering
                    view or a passer-by moves it far less than saturation)
``tint``            white balance, green vs magenta:
                    ``ln((mean G + 1) / sqrt((mean R + 1) (mean B + 1)))``
``width``           frame width in pixels (as decoded)
``height``          frame height in pixels
``encoded_kb``      encoded size in KiB (only when ``encoded_size`` is given)
``tile_*``          per-tile brightness, contrast and sharpness on a 4x4 grid
                    (``TILE_KEYS``; see ``_tile_stats``)
==================  ==========================================================

Cost: luma statistics (brightness, contrast, sharpness, noise) are taken at
native resolution up to ``WORK_SIDE`` pixels on the long side (VGA frames:
every pixel, so blur and sensor noise are measured in real pixels); larger
frames are first area-averaged by an integer factor, which OpenCV does in one
cheap pass. Colour statistics (means and spreads over pixels, which need no
anti-aliasing) use a bilinear copy of at most ``COLOUR_SIDE`` pixels.
About 1 ms for a 640x480 frame on one core.

Examples
--------
>>> import numpy as np
>>> q = image_quality(np.full((480, 640, 3), 100, np.uint8), encoded_size=2048)
>>> sorted(q) == sorted(QUALITY_KEYS + TILE_KEYS)
True
>>> q["brightness"], q["contrast"], q["saturation"], q["sharpness"], q["encoded_kb"]
(100.0, 0.0, 0.0, 0.0, 2.0)
>>> q["warmth"], q["tint"]
(0.0, 0.0)
"""

from __future__ import annotations

import math
import threading

import cv2
import numpy as np

QUALITY_KEYS: tuple[str, ...] = (
    "brightness",
    "contrast",
    "sharpness",
    "saturation",
    "colourfulness",
    "noise",
    "warmth",
    "tint",
    "width",
    "height",
    "encoded_kb",
)

# Spatially resolved statistics: the frame (at the luma working resolution) cut
# into TILES x TILES tiles, each tile's brightness (mean luma), contrast (luma
# std) and sharpness (log1p of its Laplacian variance), under the keys
# ``tile_<metric>_<row><col>``. Whole-frame statistics barely move when a smudge
# blurs part of the lens or the corners darken (vignetting); a tile does. The
# monitor compares each tile with its own history (processors.monitor.features).
TILES = 4
TILE_METRICS: tuple[str, ...] = ("brightness", "contrast", "sharpness")
TILE_KEYS: tuple[str, ...] = tuple(
    f"tile_{m}_{r}{c}" for m in TILE_METRICS for r in range(TILES) for c in range(TILES)
)

WORK_SIDE = 640
COLOUR_SIDE = 160

_SCRATCH = threading.local()
_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def image_quality(rgb: np.ndarray, encoded_size: int | None = None) -> dict[str, float]:
    """Quality signals of one RGB uint8 frame (H, W, 3); see the module table.

    Parameters
    ----------
    rgb
        The decoded frame.
    encoded_size
        Size of the encoded bytes, if known; adds ``encoded_kb``.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB frame, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY, dst=_scratch("grey", (h, w), np.uint8))
    grey = _shrink(grey, WORK_SIDE)
    gh, gw = grey.shape

    mean, std = cv2.meanStdDev(grey)
    gf = _scratch("gf", (gh, gw), np.float32)
    gf[...] = grey
    n_px = gf.size
    # Laplacian variance via two cheap reductions (sum and L2 norm); OpenCV's
    # float meanStdDev and numpy's std are each ~3x slower on a VGA frame.
    lap = cv2.filter2D(
        gf, -1, _LAPLACIAN, dst=_scratch("lap", (gh, gw), np.float32),
        borderType=cv2.BORDER_REFLECT,
    )
    lap_mean = float(cv2.sumElems(lap)[0]) / n_px
    lap_var = max(0.0, float(cv2.norm(lap, cv2.NORM_L2)) ** 2 / n_px - lap_mean**2)
    tiles = _tile_stats(gf, lap) if gh >= TILES and gw >= TILES else {}

    noise = 0.0
    if gh > 2 and gw > 2:
        # The Laplacian's buffer is free again: reuse it.
        resp = cv2.filter2D(gf, -1, _IMMERKAER, dst=lap, borderType=cv2.BORDER_REFLECT)
        total = float(cv2.norm(resp[1:-1, 1:-1], cv2.NORM_L1))
        noise = math.sqrt(math.pi / 2.0) * total / (6.0 * (gw - 2) * (gh - 2))

    small = _colour_copy(rgb, COLOUR_SIDE)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    saturation = float(hsv[:, :, 1].mean()) / 255.0
    f = small.astype(np.float32)
    rg = f[:, :, 0] - f[:, :, 1]
    yb = 0.5 * (f[:, :, 0] + f[:, :, 1]) - f[:, :, 2]
    colourfulness = math.hypot(float(rg.std()), float(yb.std())) + 0.3 * math.hypot(
        float(rg.mean()), float(yb.mean())
    )

    r_mean, g_mean, b_mean = (float(f[:, :, c].mean()) + 1.0 for c in range(3))
    out = {
        "brightness": float(mean[0, 0]),
        "contrast": float(std[0, 0]),
        "sharpness": math.log1p(lap_var),
        "saturation": saturation,
        "colourfulness": colourfulness,
        "noise": noise,
        "warmth": math.log(r_mean / b_mean),
        "tint": math.log(g_mean / math.sqrt(r_mean * b_mean)),
        "width": float(w),
        "height": float(h),
    }
    if encoded_size is not None:
        out["encoded_kb"] = encoded_size / 1024.0
    out.update(tiles)
    return out


def _tile_stats(gf: np.ndarray, lap: np.ndarray) -> dict[str, float]:
    """Per-tile brightness, contrast and sharpness (``TILE_KEYS``) from luma and its Laplacian.

    Block means of the frame cropped to a multiple of ``TILES``
    (``_block_means``); variances as E[x²] - E[x]².
    """
    gh, gw = gf.shape
    th, tw = gh // TILES, gw // TILES
    g = np.ascontiguousarray(gf[: th * TILES, : tw * TILES])
    lp = np.ascontiguousarray(lap[: th * TILES, : tw * TILES])
    sq = _scratch("tile_sq", g.shape, np.float32)
    m_g = _block_means(g, th, tw)
    cv2.multiply(g, g, dst=sq)
    m_g2 = _block_means(sq, th, tw)
    m_l = _block_means(lp, th, tw)
    cv2.multiply(lp, lp, dst=sq)
    m_l2 = _block_means(sq, th, tw)
    contrast = np.sqrt(np.maximum(m_g2 - m_g**2, 0.0))
    sharp = np.log1p(np.maximum(m_l2 - m_l**2, 0.0))
    values = np.concatenate([m_g.ravel(), contrast.ravel(), sharp.ravel()]).tolist()
    return dict(zip(TILE_KEYS, values, strict=True))


def _block_means(a: np.ndarray, th: int, tw: int) -> np.ndarray:
    """Means of the ``TILES`` x ``TILES`` blocks (th x tw each) of a C-contiguous float32 array.

    One OpenCV row reduction over the array seen as (rows x blocks, tw) -- a
    quarter of the cost of an area resize to 4x4 -- then a tiny numpy sum.
    """
    rows = cv2.reduce(a.reshape(-1, tw), 1, cv2.REDUCE_SUM, dtype=cv2.CV_64F)
    return rows.reshape(TILES, th, TILES).sum(axis=1) / float(th * tw)


def _scratch(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A per-thread reusable buffer.

    Fresh ~1 MB arrays are served by mmap and returned to the OS on free, so
    every call page-faults them in again: measured 887 faults and 2.4 ms of
    system time per VGA frame on the (sandboxed) benchmark machine, three
    times the arithmetic. Reusing per-thread buffers removes that.
    """
    bufs = _SCRATCH.__dict__
    buf = bufs.get(name)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = bufs[name] = np.empty(shape, dtype)
    return buf


def _shrink(img: np.ndarray, side: int) -> np.ndarray:
    """Area-average by the smallest integer factor that brings the long side to <= side.

    Integer factors only: OpenCV's INTER_AREA has a fast path for exact
    integer ratios and is ~10x slower otherwise, so the edge rows/columns
    that do not fill a whole block are cropped (at most k-1 pixels).
    """
    h, w = img.shape[:2]
    k = -(-max(h, w) // side)
    if k <= 1:
        return img
    nh, nw = max(1, h // k), max(1, w // k)
    if nh * k > h or nw * k > w:  # an edge shorter than k: plain (slow) area resize
        return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return cv2.resize(img[: nh * k, : nw * k], (nw, nh), interpolation=cv2.INTER_AREA)


def _colour_copy(rgb: np.ndarray, side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    if s >= 1:
        return rgb
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
