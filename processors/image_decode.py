"""Encoded frame bytes (JPEG, PNG, WebP) to an RGB uint8 array, safely.

Frames come from cameras and apps we do not control, so every failure mode
of a decoder is expected input here: truncated uploads, random bytes, a
tiny file that declares a gigantic canvas (a decompression bomb), 16-bit or
palette PNGs, alpha, EXIF rotation. Each bad input raises
``driftline.errors.UndecodableImage`` (a ``PermanentError``: dead-letter it,
do not retry) with a message saying which of these it was.

The pixel limit is checked against the size declared in the header, before
any pixel is decoded. Pillow's own ``Image.MAX_IMAGE_PIXELS`` is a
process-wide global that any library may change, so it is not relied on
(it still refuses images above twice its value; those are reported as too
large too).

Examples
--------
>>> import io
>>> import numpy as np
>>> from PIL import Image
>>> buf = io.BytesIO()
>>> Image.new("RGBA", (4, 3), (255, 0, 0, 128)).save(buf, "PNG")
>>> rgb = decode_image(buf.getvalue())
>>> rgb.shape, rgb.dtype, rgb[0, 0].tolist()      # alpha composited on black
((3, 4, 3), dtype('uint8'), [128, 0, 0])
>>> decode_image(b"not an image")
Traceback (most recent call last):
...
driftline.errors.UndecodableImage: not a JPEG, PNG or WebP image (12 bytes)
>>> decode_image(buf.getvalue(), max_pixels=10)
Traceback (most recent call last):
...
driftline.errors.UndecodableImage: image too large: 4x3 = 12 pixels > max_pixels=10
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from driftline.errors import UndecodableImage

FORMATS = ("JPEG", "PNG", "WEBP")
_ORIENTATION = 0x0112  # EXIF tag

# Exceptions Pillow's decoders raise on corrupt or truncated data (OSError:
# "image file is truncated", "broken data stream"; SyntaxError from some
# plugins on bad headers; struct.error / IndexError on short chunks).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)


def decode_image(data: bytes, max_pixels: int = 40_000_000) -> np.ndarray:
    """Decode JPEG / PNG / WebP bytes to an RGB uint8 array of shape (H, W, 3).

    EXIF orientation is applied (so ``H``, ``W`` are as displayed). Grey and
    palette images become RGB; alpha is composited on black; 16-bit samples
    keep their high byte.

    Parameters
    ----------
    data
        The encoded image.
    max_pixels
        Refuse images whose header declares more than this many pixels.

    Raises
    ------
    UndecodableImage
        Empty, not an image of a supported format, zero-size, too large,
        truncated or otherwise corrupt.
    """
    if not data:
        raise UndecodableImage("empty image payload (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) between MAX_IMAGE_PIXELS and twice it;
            # our own limit below decides instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise UndecodableImage(f"image too large (decompression bomb?): {exc}") from None
    except UnidentifiedImageError:
        fmt = _sniff(data)
        if fmt is not None:
            # The signature is right but Pillow rejected the header (zero or
            # absurd dimensions, bad IHDR/SOF, broken chunk CRC).
            raise UndecodableImage(
                f"corrupt {fmt} header ({len(data)} bytes; zero-size or invalid)"
            ) from None
        raise UndecodableImage(
            f"not a JPEG, PNG or WebP image ({len(data)} bytes)"
        ) from None
    except _DECODE_ERRORS as exc:
        raise UndecodableImage(f"corrupt image header: {exc}") from None

    with im:
        w, h = im.size
        if w <= 0 or h <= 0:
            raise UndecodableImage(f"zero-size image ({w}x{h})")
        if w * h > max_pixels:
            # Checked from the header alone: the pixels are not decoded yet.
            raise UndecodableImage(
                f"image too large: {w}x{h} = {w * h} pixels > max_pixels={max_pixels}"
            )
        try:
            im.load()
        except Image.DecompressionBombError as exc:
            raise UndecodableImage(f"image too large (decompression bomb?): {exc}") from None
        except _DECODE_ERRORS as exc:
            raise UndecodableImage(
                f"truncated or corrupt {im.format} image ({len(data)} bytes): {exc}"
            ) from None
        shown: Image.Image = im
        try:
            orientation = im.getexif().get(_ORIENTATION, 1)
            # exif_transpose copies the whole image even when there is nothing
            # to do (~1 ms per VGA frame): only call it for a real rotation/flip.
            if orientation in (2, 3, 4, 5, 6, 7, 8):
                shown = ImageOps.exif_transpose(im)
        except (*_DECODE_ERRORS, KeyError, AttributeError):
            # Malformed EXIF must not cost us a frame whose pixels are fine:
            # show it as stored.
            pass
        return _to_rgb(shown)


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return None


def _to_rgb(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return _writable(np.asarray(im))
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grey (PNG): keep the high byte. "I" is 32-bit signed; PNG
        # never stores more than 16 bits in it, clip anyway.
        a = np.asarray(im).astype(np.int64)
        grey = (np.clip(a, 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        a = np.asarray(im)
        alpha = a[:, :, 3:4].astype(np.uint16)
        # Composite on black: round(rgb * alpha / 255) in integer arithmetic.
        out = (a[:, :, :3].astype(np.uint16) * alpha + 127) // 255
        return out.astype(np.uint8)
    if im.mode != "RGB":
        im = im.convert("RGB")  # L, 1, CMYK, YCbCr, ...
    return _writable(np.asarray(im))


def _writable(a: np.ndarray) -> np.ndarray:
    # np.asarray over a Pillow image can be a read-only view; callers
    # (augmenters, the simulated camera) may write into frames.
    return a if a.flags.writeable else a.copy()
