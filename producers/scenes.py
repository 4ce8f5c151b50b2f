"""Named real scenes for the simulated camera, read from files that pip packages ship.

Photos come from the files inside the scikit-image wheel (``skimage/data/``) and
the scikit-learn wheel (``sklearn/datasets/images/``). Only files already in the
wheels are read — never ``skimage.data`` fetchers that download through pooch —
and the packages are located without importing them (importing scikit-image
costs a second and is not needed to read a PNG). Both come with the ``sim``
extra (``pip install 'driftline[sim]'``); a scene whose package is not
installed is not listed, and asking for it raises ``ConfigError`` naming the
extra (:func:`check_scene` does it up front).

One real video scene, ``vtest`` (Debian ``opencv-doc``'s ``vtest.avi``: a fixed
outdoor camera, people walking, 768x576, 795 frames at 10 fps) is listed when
the file is found: the ``video_path`` argument, else the environment variable
``DRIFTLINE_VIDEO_PATH``, else the usual extraction places. Any other video can
be used as a scene by naming it ``video:/path/to/file.avi``.

Examples
--------
>>> "astronaut" in list_scenes()
True
>>> img = load_scene("chelsea")
>>> img.dtype, img.ndim, img.shape[2]
(dtype('uint8'), 3, 3)
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np

from driftline.errors import ConfigError, UndecodableImage

VIDEO_ENV = "DRIFTLINE_VIDEO_PATH"
"""Environment variable naming the ``vtest.avi`` file (or any video) for the ``vtest`` scene."""

VIDEO_SCENE = "vtest"
VIDEO_PREFIX = "video:"

SIM_EXTRA = "pip install 'driftline[sim]'"
"""What installs the photo scenes' packages (scikit-image, scikit-learn)."""

# The PyPI distribution behind each package, for error messages.
_DISTRIBUTIONS = {"skimage": "scikit-image", "sklearn": "scikit-learn"}

_VTEST_CANDIDATES = (
    "/tmp/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi",
    "/usr/share/doc/opencv-doc/examples/data/vtest.avi",
)

# name -> (package, path inside the package). Colour photos first: they make the
# most camera-like scenes; the order is the default order of camera_fleet().
_PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "chelsea": ("skimage", "data/chelsea.png"),
    "coffee": ("skimage", "data/coffee.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
    "motorcycle_left": ("skimage", "data/motorcycle_left.png"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "hubble_deep_field": ("skimage", "data/hubble_deep_field.jpg"),
    "immunohistochemistry": ("skimage", "data/ihc.png"),
    "retina": ("skimage", "data/retina.jpg"),
    "motorcycle_right": ("skimage", "data/motorcycle_right.png"),
    "camera": ("skimage", "data/camera.png"),
}


def _package_dir(package: str) -> Path | None:
    # find_spec on a top-level package locates it without executing its __init__.
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def photo_path(name: str) -> Path | None:
    """The file behind photo scene ``name``, or None when its package is absent.

    Examples
    --------
    >>> photo_path("china").name
    'china.jpg'
    """
    if name not in _PHOTOS:
        return None
    package, rel = _PHOTOS[name]
    root = _package_dir(package)
    if root is None:
        return None
    path = root / rel
    return path if path.is_file() else None


def video_scene_path(video_path: str | os.PathLike[str] | None = None) -> Path | None:
    """Where the ``vtest`` video scene is: argument, then ``$DRIFTLINE_VIDEO_PATH``, then defaults.

    Returns None when no candidate file exists (callers and tests skip the video
    scene then). An explicit argument or environment value that does not exist is
    not silently replaced by a default: it yields None.
    """
    explicit = video_path if video_path is not None else os.environ.get(VIDEO_ENV)
    candidates = [explicit] if explicit else list(_VTEST_CANDIDATES)
    for cand in candidates:
        path = Path(cand)
        if path.is_file():
            return path
    return None


def photo_scenes() -> list[str]:
    """Names of the photo scenes whose files are installed, in the default fleet order."""
    return [name for name in _PHOTOS if photo_path(name) is not None]


def list_scenes(video_path: str | os.PathLike[str] | None = None) -> list[str]:
    """All scene names available here: installed photos, then ``vtest`` if its file is found."""
    names = photo_scenes()
    if video_scene_path(video_path) is not None:
        names.append(VIDEO_SCENE)
    return names


def is_video_scene(name: str) -> bool:
    """True for ``vtest`` and ``video:<path>`` scene names."""
    return name == VIDEO_SCENE or name.startswith(VIDEO_PREFIX)


def resolve_video(name: str, video_path: str | os.PathLike[str] | None = None) -> Path:
    """The video file behind a video scene name; ConfigError when it is not there."""
    if name.startswith(VIDEO_PREFIX):
        file = Path(name[len(VIDEO_PREFIX) :])
        if not file.is_file():
            raise ConfigError("scene", f"video file {file} does not exist")
        return file
    path = video_scene_path(video_path)
    if path is None:
        raise ConfigError(
            "scene",
            f"video scene {VIDEO_SCENE!r} needs vtest.avi: pass video_path or set {VIDEO_ENV} "
            "(Debian opencv-doc, usr/share/doc/opencv-doc/examples/data/vtest.avi)",
        )
    return path


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image file to RGB uint8 HxWx3 (grey and RGBA files are converted)."""
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)  # always 3-channel BGR
    if img is None:
        raise UndecodableImage(f"cannot decode image file {path}")
    return np.ascontiguousarray(img[:, :, ::-1])


def first_video_frame(path: Path) -> np.ndarray:
    """The first frame of a video as RGB uint8."""
    cap = cv2.VideoCapture(str(path))
    try:
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok or frame is None:
        raise UndecodableImage(f"cannot decode a frame of video {path}")
    return np.ascontiguousarray(frame[:, :, ::-1])


def check_scene(name: str, video_path: str | os.PathLike[str] | None = None) -> None:
    """Raise ``ConfigError`` unless scene ``name`` can be loaded here (no decoding).

    A photo scene whose package is missing names the extra that installs it,
    so ``simulate`` and ``demo`` fail with one clear line before starting
    anything.

    Examples
    --------
    >>> check_scene("coffee")
    >>> check_scene("video:/nonexistent.avi")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigError: scene: video file /nonexistent.avi does not exist
    """
    _scene_file(name, video_path)


def _scene_file(name: str, video_path: str | os.PathLike[str] | None) -> Path:
    """The photo or video file behind scene ``name``; ``ConfigError`` naming what is missing."""
    if is_video_scene(name):
        return resolve_video(name, video_path)
    path = photo_path(name)
    if path is not None:
        return path
    if name in _PHOTOS:
        package = _PHOTOS[name][0]
        raise ConfigError(
            "scene",
            f"scene {name!r} is a photo shipped with {_DISTRIBUTIONS[package]}, which is not "
            f"installed: {SIM_EXTRA}",
        )
    available = list_scenes(video_path)
    hint = "" if photo_scenes() else f" (the photo scenes need {SIM_EXTRA})"
    raise ConfigError(
        "scene", f"unknown scene {name!r}; available: {', '.join(available) or 'none'}{hint}"
    )


def load_scene(name: str, video_path: str | os.PathLike[str] | None = None) -> np.ndarray:
    """Scene ``name`` as an RGB uint8 HxWx3 array (a video scene gives its first frame).

    Raises
    ------
    ConfigError
        Unknown name (the message lists the available ones), a photo scene whose
        package is not installed, or a missing video file (see :func:`check_scene`).

    Examples
    --------
    >>> load_scene("flower").shape
    (427, 640, 3)
    >>> load_scene("nope")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    driftline.errors.ConfigError: scene: unknown scene 'nope'; available: astronaut, ...
    """
    file = _scene_file(name, video_path)
    return first_video_frame(file) if is_video_scene(name) else read_rgb(file)
