"""decode_image on real photos and on every kind of bad input a camera can send."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import skimage.data
from PIL import Image

from driftline.errors import PermanentError, UndecodableImage
from processors.image_decode import decode_image


def encode(img: Image.Image | np.ndarray, fmt: str, **kw: object) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_with_header(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` (8-bit RGB), with tiny data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(idat)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def chelsea() -> np.ndarray:
    return skimage.data.chelsea()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_round_trip_formats(chelsea: np.ndarray, fmt: str) -> None:
    out = decode_image(encode(chelsea, fmt, quality=95) if fmt != "PNG" else encode(chelsea, fmt))
    assert out.shape == chelsea.shape and out.dtype == np.uint8 and out.flags.writeable
    assert np.abs(out.astype(int) - chelsea).mean() < 4.0


def test_truncated_jpeg(chelsea: np.ndarray) -> None:
    data = encode(chelsea, "JPEG", quality=90)
    with pytest.raises(UndecodableImage, match="truncated or corrupt JPEG") as ei:
        decode_image(data[: len(data) // 2])
    assert isinstance(ei.value, PermanentError)
    assert ei.value.reason == "undecodable_image"


def test_random_bytes_and_empty() -> None:
    rng = np.random.default_rng(1)
    with pytest.raises(UndecodableImage, match="not a JPEG, PNG or WebP"):
        decode_image(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(UndecodableImage, match="empty"):
        decode_image(b"")
    with pytest.raises(UndecodableImage):
        decode_image(b"\xff\xd8\xff")  # a JPEG start marker and nothing else


def test_other_formats_are_refused(chelsea: np.ndarray) -> None:
    with pytest.raises(UndecodableImage, match="not a JPEG, PNG or WebP"):
        decode_image(encode(chelsea, "BMP"))


def test_decompression_bomb_refused_from_header() -> None:
    # 7000 x 7000 = 49 Mpx > default 40 Mpx, but below Pillow's own global limit:
    # only our header check stops it. The body is empty, so had the pixels
    # been decoded the error would be "truncated", not "too large".
    with pytest.raises(UndecodableImage, match="too large: 7000x7000"):
        decode_image(png_with_header(7000, 7000))
    # Far beyond Pillow's own limit too (50 Gpx): still our error type.
    with pytest.raises(UndecodableImage, match="too large"):
        decode_image(png_with_header(100_000, 500_000))


def test_jpeg_with_forged_huge_dimensions(chelsea: np.ndarray) -> None:
    data = bytearray(encode(chelsea, "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 60_000, 60_000)  # height, width
    with pytest.raises(UndecodableImage, match="too large"):
        decode_image(bytes(data))


def test_max_pixels_parameter(chelsea: np.ndarray) -> None:
    data = encode(chelsea, "PNG")
    assert decode_image(data, max_pixels=chelsea.shape[0] * chelsea.shape[1]).shape[0] == 300
    with pytest.raises(UndecodableImage, match="too large"):
        decode_image(data, max_pixels=1000)


def test_zero_size_is_refused() -> None:
    with pytest.raises(UndecodableImage, match=r"corrupt PNG header.*zero-size"):
        decode_image(png_with_header(0, 10))


def test_exif_orientation_is_applied() -> None:
    # Stored 40 wide x 20 high: left half red, right half blue.
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = (255, 0, 0)
    img[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: display rotated 90 degrees clockwise
    out = decode_image(encode(img, "JPEG", quality=95, exif=exif.tobytes()))
    assert out.shape == (40, 20, 3)  # shown portrait
    top, bottom = out[:15].reshape(-1, 3).mean(0), out[25:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 60  # the stored left (red) is now on top
    assert bottom[2] > 200 and bottom[0] < 60
    # Without the tag the same pixels stay landscape.
    assert decode_image(encode(img, "JPEG", quality=95)).shape == (20, 40, 3)


def test_grey_and_16_bit_grey() -> None:
    cam = skimage.data.camera()
    out = decode_image(encode(cam, "PNG"))
    assert out.shape == (*cam.shape, 3)
    assert (out[:, :, 0] == cam).all() and (out[:, :, 1] == cam).all()
    wide = cam.astype(np.uint16) * 257  # full 16-bit range
    pil16 = Image.fromarray(wide)
    assert pil16.mode.startswith("I;16")
    out16 = decode_image(encode(pil16, "PNG"))
    assert out16.dtype == np.uint8 and (out16[:, :, 2] == cam).all()


def test_alpha_is_composited_on_black() -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:, :5, 3] = 255
    rgba[:, 5:, 3] = 0
    out = decode_image(encode(rgba, "PNG"))
    assert out.shape == (10, 10, 3)
    assert out[0, 0].tolist() == [200, 100, 50]
    assert out[0, 9].tolist() == [0, 0, 0]
    la = Image.fromarray(np.dstack([np.full((4, 4), 200, np.uint8),
                                    np.full((4, 4), 128, np.uint8)]), "LA")
    assert decode_image(encode(la, "PNG"))[0, 0].tolist() == [100, 100, 100]


def test_palette_with_transparency(chelsea: np.ndarray) -> None:
    pal = Image.fromarray(chelsea).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    out = decode_image(encode(pal, "PNG"))
    assert out.shape == chelsea.shape
    pal.info["transparency"] = 0
    out_t = decode_image(encode(pal, "PNG", transparency=0))
    idx = np.asarray(pal) == 0
    assert (out_t[idx] == 0).all()


def test_cmyk_jpeg(chelsea: np.ndarray) -> None:
    cmyk = Image.fromarray(chelsea).convert("CMYK")
    out = decode_image(encode(cmyk, "JPEG", quality=95))
    assert out.shape == chelsea.shape
    assert np.abs(out.astype(int) - chelsea).mean() < 8.0
