"""The monitor's memory: signals whose value depends on what the stream showed before.

Stateless signals are read straight off an event by their catalogue
``extract`` function (``processors.monitor.catalogue``). The rest need memory,
held here, each part bounded:

- ``EmbeddingFeatures``: per embedding source (``embedding``, ``edge``), the
  warm-up vectors, then the fitted PCA basis (``EmbeddingReference``) and the
  river learners on its projections; gives ``<source>.distance``,
  ``.residual`` and ``.outlier``.
- ``ClassIds``: class names to small integers for the class-mix test, capped.
- ``TileFeatures``: per-tile references of the 4x4 image-quality tiles; gives
  ``quality.tile_brightness``/``_contrast``/``_sharpness`` (the worst tile's
  deviation from its own reference) and ``quality.frozen``.
- ``LabelJoin``: recent predictions by event id, so that a late label can be
  compared with what the model said (``performance.error``) and taught to the
  retrain head with its frame's projection.

No Kafka, no I/O.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from typing import Any

import numpy as np

from driftline.errors import InvalidEvent
from driftline.settings import MonitorSettings
from processors.embedding_learners import JOIN_WINDOW, EmbeddingLearners
from processors.embedding_reference import EmbeddingReference
from processors.image_quality import TILE_KEYS, TILE_METRICS, TILES
from processors.learners.outlier_scorer import OutlierScorer
from processors.learners.retrain_head import RetrainHead
from processors.monitor.catalogue import EMBEDDING_SOURCES
from processors.signal_tracker import reference_envelope
from schemas.events import Label, Prediction

log = logging.getLogger("driftline.monitor")


def _first(buffered: list[list[float]], vector: list[float], n: int) -> int:
    """Index of the first vector of length ``n`` among ``buffered`` then ``vector``."""
    for i, v in enumerate(buffered):
        if len(v) == n:
            return i
    return len(buffered) if len(vector) == n else len(buffered) + 1


# Class names get small integer ids for the class-mix test. A stream whose
# "classes" are unbounded strings (ids, free text) must not grow the table
# without bound: past this many names, new ones share the "other" bin.
MAX_CLASS_IDS = 4096
OTHER_CLASS = -1


class EmbeddingFeatures:
    """Embedding references, warm-up buffers and learners of one stream, per source.

    The reference (PCA basis) of a source is fitted once, on its first
    ``reference_size`` vectors; its scalar signals then build their own
    references from the scores after it. Until then a vector only fills the
    warm-up buffer (at most ``reference_size`` vectors, dropped once fitted).
    """

    def __init__(self, settings: MonitorSettings, model_version: str | None = None) -> None:
        self.settings = settings
        self.references: dict[str, EmbeddingReference] = {}
        self.learners: dict[str, EmbeddingLearners] = {}
        self.warmup: dict[str, list[Any]] = {src: [] for src in EMBEDDING_SOURCES}
        # A known dimension wins over what the stream sends: otherwise one
        # malformed vector arriving first would poison the stream's reference
        # and every good vector after it would be dead-lettered.
        edge = settings.edge_dims
        self.known_dims: dict[str, int | None] = {
            "embedding": settings.embedding_dim,
            "edge": edge.get(model_version or "", edge.get("*")),
        }
        # Without a known dimension, the first `edge_quorum` vectors vote.
        self.voted_dims: dict[str, int] = {}

    def _dimension(self, source: str, vector: list[float]) -> int | None:
        """The source's dimension, or None while its first vectors are still voting."""
        reference = self.references.get(source)
        if reference is not None:
            return reference.dim
        known = self.known_dims.get(source)
        if known is not None:
            return known
        if source in self.voted_dims:
            return self.voted_dims[source]
        buffered = self.warmup[source]
        quorum = min(self.settings.edge_quorum, self.settings.reference_size)
        if len(buffered) + 1 < quorum:
            return None  # voting: accepted into the warm-up buffer for now
        lengths = Counter(len(v) for v in [*buffered, vector])
        # The most common length; a tie goes to the length seen first.
        dim = max(lengths, key=lambda n: (lengths[n], -_first(buffered, vector, n)))
        self.voted_dims[source] = dim
        minority = sum(1 for v in buffered if len(v) != dim)
        if minority:
            # Already accepted (they were only buffered, never scored): they
            # are left out of the reference, not dead-lettered after the fact.
            log.warning("%s vectors: %d of the first %d had another length than the %d the "
                        "majority has; left out of the reference", source, minority, quorum, dim)
            buffered[:] = [v for v in buffered if len(v) == dim]
        return dim

    def values(self, source: str, vector: list[float], key: str, event_id: str) -> dict[str, float]:
        """``<source>.distance``/``.residual``/``.outlier`` of one vector (none while warming up).

        Raises
        ------
        InvalidEvent
            ``embedding_dimension``: the vector's length is not the source's.
        """
        reference = self.references.get(source)
        buffered = self.warmup[source]
        dim = self._dimension(source, vector)
        if dim is not None and len(vector) != dim:
            raise InvalidEvent(
                f"{source} vector has {len(vector)} dimensions, this stream's {source} "
                f"reference has {dim}",
                reason="embedding_dimension",
            )
        if reference is None:
            # One float64 array per vector (4 KB at 512-d), not a list of Python
            # floats (16 KB): the warm-up buffer was ~3.3 MB per stream.
            buffered.append(np.asarray(vector, dtype=np.float64))
            if len(buffered) >= self.settings.reference_size:
                fitted = self.references[source] = EmbeddingReference.fit(
                    np.asarray(buffered), self.settings.pca_components
                )
                if source == "embedding" or self.settings.edge_learners:
                    self.learners[source] = EmbeddingLearners.fit(fitted, np.asarray(buffered))
                buffered.clear()
            return {}
        scores, projection = reference.scores_and_projection(vector)
        out = {f"{source}.{k}": v for k, v in scores.items()}
        learners = self.learners.get(source)
        if learners is not None:
            out[f"{source}.outlier"] = learners.observe(key, event_id, projection)
        return out

    def drop(self, source: str) -> None:
        """Forget a source's basis and warm-up: it is fitted again on the next vectors.

        Keeping the old basis would leave the new regime's frames scored as
        far from it: re-referenced distance/residual would calibrate on
        inflated scores and miss the next change.
        """
        self.references.pop(source, None)
        self.warmup[source].clear()

    def install(self, source: str, reference: EmbeddingReference,
                scorer: OutlierScorer | None) -> None:
        """Start a source calibrated (a reference bundle): basis, and its outlier scorer."""
        self.references[source] = reference
        if scorer is not None:
            head = RetrainHead(k=reference.basis.shape[0])
            self.learners[source] = EmbeddingLearners(scorer, head)

    def outlier_examples(self, source: str) -> list[str]:
        """The latest single odd frames of a source (what to look at first)."""
        learners = self.learners.get(source)
        return [] if learners is None else list(learners.outlier_examples)[-3:]

    def state(self) -> dict[str, Any]:
        return {
            "references": {src: ref.state() for src, ref in self.references.items()},
            # Not the warm-up buffer (up to reference_size × dim floats, megabytes):
            # a worker restarted during an embedding warm-up starts that warm-up
            # again; every other part of the state is restored exactly.
            "warming": {src: len(vs) for src, vs in self.warmup.items()},
            "learners": {src: ln.state() for src, ln in self.learners.items()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.references = {
            src: EmbeddingReference.from_state(ref) for src, ref in state["references"].items()
        }
        self.learners = {
            src: EmbeddingLearners.from_state(ln) for src, ln in state.get("learners", {}).items()
        }


class ClassIds:
    """Class name -> small integer, for the class-mix test; at most ``MAX_CLASS_IDS`` names.

    >>> ids = ClassIds(max_ids=2)
    >>> [ids.id_of(c) for c in ("cat", "dog", "cat", "emu")]
    [0, 1, 0, -1]
    """

    def __init__(self, ids: dict[str, int] | None = None, max_ids: int = MAX_CLASS_IDS) -> None:
        self.ids: dict[str, int] = dict(ids or {})
        self.max_ids = max_ids

    def id_of(self, name: str) -> int:
        cid = self.ids.get(name)
        if cid is None:
            if len(self.ids) >= self.max_ids:
                return OTHER_CLASS
            cid = self.ids[name] = len(self.ids)
        return cid


class LabelJoin:
    """Recent predictions by event id, for labels that arrive later (bounded).

    ``window`` predictions are kept for the error signal; the last
    ``JOIN_WINDOW`` that name a frame also remember which embedding source
    and key that frame's projection is kept under, for the retrain head.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self.predictions: OrderedDict[str, str] = OrderedDict()
        self.frames: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self.unmatched = 0

    def remember(self, event: Prediction) -> None:
        self.predictions[event.event_id] = event.top_class
        if len(self.predictions) > self.window:
            self.predictions.popitem(last=False)
        source = "edge" if event.embedding is not None else "embedding"
        if event.frame_id is not None or source == "edge":
            self.frames[event.event_id] = (source, event.frame_id or event.event_id)
            if len(self.frames) > JOIN_WINDOW:
                self.frames.popitem(last=False)

    def match(self, label: Label) -> tuple[str | None, tuple[str, str] | None]:
        """The class the labelled prediction named (None: unknown or too old), and its frame."""
        predicted = self.predictions.pop(label.target_event_id, None)
        if predicted is None:
            self.unmatched += 1
            return None, None
        return predicted, self.frames.pop(label.target_event_id, None)


# -- spatially resolved image quality and a frozen feed (issue #11) -------------------

# Per-tile tolerance floors ``(relative, absolute)``, as the whole-frame quality
# signals' (catalogue ``_QUALITY_TOLERANCE``): the smallest change of one tile
# worth counting. Each tile's tolerance is the largest of its floor, 2.5 of its
# reference standard deviations and the range of its reference's moving average.
TILE_TOLERANCE: dict[str, tuple[float, float]] = {
    # log units relative to the median tile (``relative_tiles``): 0.1 = 10%.
    "brightness": (0.0, 0.1),
    "contrast": (0.0, 0.15),
    "sharpness": (0.0, 0.5),
}
# Consecutive frames whose tile statistics all agree to this (absolute) are the
# same picture: a stuck encoder repeats frames bit for bit; a live static scene
# still differs by its sensor noise (~0.01 grey levels in a tile mean).
FROZEN_EPS = 1e-6
# The frozen-feed signal: held for ``MonitorSettings.frozen_after_s``, not
# ``min_duration``, and never on the fast path (``StreamMonitor._measure_rate``).
FROZEN_SIGNAL = "quality.frozen"
# Tile metrics that are signals (tile contrast is measured, not watched).
TILE_SIGNALS = ("quality.tile_brightness", "quality.tile_sharpness")
# The tile signals average the WORST_TILES largest deviations: a smudge or a
# vignette covers several tiles, a single tile's noise one.
WORST_TILES = 4
# Per-frame shortcuts of ``tile_levels``/``relative_tiles``/``TILE_SIGNALS``: the
# metrics taken as log1p, the two middle ranks of the median over the tiles,
# and the (row, signal) of each watched metric.
_LOG_METRICS = [m for m, metric in enumerate(TILE_METRICS) if metric != "sharpness"]
_MIDDLE = ((TILES * TILES - 1) // 2, TILES * TILES // 2)
_WATCHED = tuple((m, f"quality.tile_{metric}") for m, metric in enumerate(TILE_METRICS)
                 if f"quality.tile_{metric}" in TILE_SIGNALS)
# The frozen run is capped (log1p(10^4) ~ 9.2): the value stays finite.
FROZEN_CAP = 10_000
# Spatial extent of a change (the fast path for global changes, issue #11). A
# frame is *calm* for the persistence rule when no tile moved beyond
# LOCAL_LEVEL tolerances relative to the median tile (nothing local: no
# passer-by, no occluder in view), or when at least GLOBAL_SHARE of the tiles
# moved beyond one tolerance from their own (absolute) baseline in one metric --
# blur, haze, exposure, defocus and a new scene change (nearly) every tile at
# once; a person or a vehicle covers a few tiles and then others.
GLOBAL_SHARE = 0.75
# Three tolerances, not one: a colour cast or a codec cut moves every tile's
# luma statistics a little and unevenly (a red tile brightens, a blue one
# darkens; a textured tile loses more detail than a flat one), 1-2.5 tile
# tolerances against the median tile, and a fixed camera's sway keeps 1-3 tiles
# at 1-2.5 for minutes; a passer-by dark enough to move a whole-frame signal
# beyond its tolerance (25% of the frame's brightness) moves its own tiles by
# 4-11. At 1.0 the colour cast and the codec cut waited MIN_DURATION on 5 of 5
# scenes; at 3.0, on 1 and 2 of 5 (bench/README.md, issue #11).
LOCAL_LEVEL = 3.0
# Vignetting (issue #11): the corner tiles' luma against the centre tiles'. A
# vignette darkens all four corners together; a passer-by darkens one corner
# (or the centre, which only lowers the value: the signal is one-sided up). The
# value is the darkness (log luma of the centre less a corner's) of the corner
# that is the VIGNETTE_RANK-th darkest: one or two dark corners cannot move it.
VIGNETTING_SIGNAL = "quality.vignetting"
CORNER_TILES = (0, TILES - 1, TILES * (TILES - 1), TILES * TILES - 1)
CENTRE_TILES = tuple(r * TILES + c for r in (1, 2) for c in (1, 2))
VIGNETTE_RANK = 3
_CORNER_NAMES = ("top left", "top right", "bottom left", "bottom right")


def corner_darkness(luma: np.ndarray) -> np.ndarray:
    """Each corner's darkness: the centre's log luma less the corner's.

    ``luma`` is the tiles' ``log1p`` mean luma (``tile_levels`` row 0); the
    centre is the median of ``CENTRE_TILES``.

    >>> lv = np.full(16, 4.0); lv[0] = 3.0
    >>> corner_darkness(lv).tolist()
    [1.0, 0.0, 0.0, 0.0]
    """
    centre = float(np.median(luma[list(CENTRE_TILES)]))
    return centre - luma[list(CORNER_TILES)]


def vignetting(darkening: np.ndarray) -> float:
    """The ``VIGNETTE_RANK``-th largest of the four corners' ``darkening``.

    ``darkening`` is each corner's darkness less its reference darkness (a
    scene's corners differ: a rank of raw darkness would jump when a bright
    corner goes dark).

    >>> vignetting(np.array([1.0, 1.0, 1.0, 1.0]))   # all four corners darker
    1.0
    >>> vignetting(np.array([2.0, 0.0, 0.0, 0.0]))   # one dark corner: nothing
    0.0
    """
    return float(np.sort(darkening)[-VIGNETTE_RANK])


def dark_corners(darkening: np.ndarray) -> str:
    """The corners darkened at least as much as the signal's value, for the alert.

    >>> dark_corners(np.array([0.5, 0.4, 0.6, 0.0]))
    'top left, top right, bottom left'
    """
    value = vignetting(darkening)
    return ", ".join(n for n, d in zip(_CORNER_NAMES, darkening, strict=True) if d >= value)


def tile_name(index: int) -> str:
    """``row r, column c`` of a tile index on the ``TILES`` x ``TILES`` grid.

    >>> tile_name(7)
    'row 1, column 3'
    """
    return f"row {index // TILES}, column {index % TILES}"


def tile_levels(values: list[float]) -> np.ndarray:
    """``TILE_KEYS`` values as (metric, tile) log-levels (each tile on its own).

    >>> tile_levels([100.0] * 16 + [10.0] * 16 + [3.0] * 16)[:, 0].round(3).tolist()
    [4.615, 2.398, 3.0]
    """
    x = np.asarray(values, dtype=float).reshape(len(TILE_METRICS), -1)
    for m, metric in enumerate(TILE_METRICS):
        if metric != "sharpness":
            x[m] = np.log1p(np.maximum(x[m], 0.0))
    return x


def relative_tiles(values: list[float]) -> np.ndarray:
    """``TILE_KEYS`` values as (metric, tile) log-levels relative to the median tile.

    Brightness and contrast as ``log1p``, sharpness as it is (already a log);
    minus the median over the tiles: a change of the whole frame (the light,
    a global blur) cancels, and is the whole-frame signals' business.

    >>> r = relative_tiles([100.0] * 16 + [10.0] * 16 + [3.0] * 15 + [1.0])
    >>> r.shape, float(r[0].max()), float(r[2, -1])
    ((3, 16), 0.0, -2.0)
    """
    x = tile_levels(values)
    return x - np.median(x, axis=1, keepdims=True)


class TileFeatures:
    """Per-tile references of the ``tile_*`` image-quality values; worst-tile signals.

    The first ``reference_size`` frames fix each tile's centre (median) and
    tolerance, on tile levels relative to the median tile (``relative_tiles``).
    Then, per metric, every tile's deviation in its own tolerance units; the mean of the
    ``WORST_TILES`` largest in absolute value is ``quality.tile_<metric>``;
    ``worst[metric]`` remembers the worst tile. With ``track`` each tile's
    baseline follows slow wander (an exponential weight, as the CUSUMs'
    tracking baseline, on deviations clipped to one tolerance).
    ``quality.frozen`` is ``log1p`` of the number of consecutive frames whose
    tile statistics repeated exactly (0 on a live camera). ``calm`` is the run
    of consecutive frames in which nothing local moved or the change was
    global (``GLOBAL_SHARE``; None for a frame without tile values): the
    persistence rule's fast path (``ScalarSignal.update``).
    """

    def __init__(self, reference_size: int, track: float = 0.0) -> None:
        self.reference_size = int(reference_size)
        self.track = float(track)
        self.warmup: list[list[float]] = []
        self.center: np.ndarray | None = None
        self.tol: np.ndarray | None = None
        self.previous: np.ndarray | None = None
        self.run = 0
        self.worst: dict[str, int] = {}
        # Each tile's own (not median-relative) log-level baseline, and the run
        # of consecutive calm frames (see GLOBAL_SHARE); None: no tile values.
        self.level: np.ndarray | None = None
        self.calm_run = 0
        self.calm: int | None = None
        # Each corner's reference darkness (``corner_darkness``), and the last
        # frame's darkening beyond it (the vignetting alert names the corners).
        self.corners: np.ndarray | None = None
        self.darkening: np.ndarray | None = None

    def values(self, quality: dict[str, float]) -> dict[str, float]:
        """The tile signals of one frame's quality (none when it has no tile values)."""
        self.calm = None
        try:
            vals = np.fromiter((quality[k] for k in TILE_KEYS), float, len(TILE_KEYS))
        except KeyError:
            return {}
        out: dict[str, float] = {}
        prev = self.previous
        if prev is not None:
            same = float(np.abs(vals - prev).max()) <= FROZEN_EPS
            self.run = min(self.run + 1, FROZEN_CAP) if same else 0
            out["quality.frozen"] = float(np.log1p(self.run))
        self.previous = vals
        if self.center is None or self.tol is None:
            self.warmup.append(vals.tolist())
            if len(self.warmup) >= self.reference_size:
                self._fit()
            return out
        # tile_levels and relative_tiles, inlined (this runs on every frame).
        lv = vals.reshape(len(TILE_METRICS), -1).copy()
        lv[_LOG_METRICS] = np.log1p(np.maximum(lv[_LOG_METRICS], 0.0))
        part = np.partition(lv, _MIDDLE, axis=1)
        r = lv - 0.5 * (part[:, _MIDDLE[0]] + part[:, _MIDDLE[1]])[:, None]
        d = r - self.center
        a = np.abs(d)
        a /= self.tol
        if self.level is None:
            self.level = lv.copy()
        step = lv - self.level
        calm = not (a > LOCAL_LEVEL).any() or bool(
            ((np.abs(step) > self.tol).sum(axis=1) >= GLOBAL_SHARE * lv.shape[1]).any())
        self.calm_run = min(self.calm_run + 1, FROZEN_CAP) if calm else 0
        self.calm = self.calm_run
        if self.corners is not None:
            self.darkening = corner_darkness(lv[0]) - self.corners
            out[VIGNETTING_SIGNAL] = vignetting(self.darkening)
        if self.track:
            # Each tile's baseline follows slow wander by at most ``track`` of a
            # tolerance per frame (deviations clipped to one tolerance): a lasting
            # step (a smudge) is absorbed by ~one tolerance per halflife only.
            tol, neg = self.tol, -self.tol
            self.center += self.track * np.minimum(np.maximum(d, neg, out=d), tol, out=d)
            self.level += self.track * np.minimum(np.maximum(step, neg, out=step), tol,
                                                  out=step)
        for m, name in _WATCHED:
            ai = a[m]
            self.worst[TILE_METRICS[m]] = int(ai.argmax())
            # The WORST_TILES largest, summed in ascending order (as a sort would).
            out[name] = float(np.sort(np.partition(ai, -WORST_TILES)[-WORST_TILES:]).mean())
        return out

    def _fit(self) -> None:
        ref = np.stack([relative_tiles(r) for r in self.warmup])
        center = np.median(ref, axis=0)
        tol = np.empty_like(center)
        for m, metric in enumerate(TILE_METRICS):
            rel, absolute = TILE_TOLERANCE[metric]
            for t in range(center.shape[1]):
                col = ref[:, m, t]
                tol[m, t] = max(rel * abs(center[m, t]), absolute, 2.5 * float(col.std()),
                                reference_envelope(col))
        self.center, self.tol = center, tol
        levels = np.stack([tile_levels(r) for r in self.warmup])
        self.level = np.median(levels, axis=0)
        self.corners = np.median(np.stack([corner_darkness(x[0]) for x in levels]), axis=0)
        self.warmup = []

    def drop(self) -> None:
        """Refit the tile references on the next ``reference_size`` frames."""
        self.center = self.tol = self.level = self.corners = self.darkening = None
        self.warmup = []
        self.worst = {}
        self.calm_run = 0

    def state(self) -> dict[str, Any]:
        return {
            "warmup": [list(r) for r in self.warmup],
            "center": None if self.center is None else self.center.tolist(),
            "tol": None if self.tol is None else self.tol.tolist(),
            "previous": None if self.previous is None else self.previous.tolist(),
            "run": self.run,
            "worst": dict(self.worst),
            "level": None if self.level is None else self.level.tolist(),
            "calm_run": self.calm_run,
            "corners": None if self.corners is None else self.corners.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], reference_size: int,
                   track: float = 0.0) -> TileFeatures:
        t = cls(reference_size, track)
        t.warmup = [list(map(float, r)) for r in state.get("warmup", [])]
        if state.get("center") is not None and state.get("tol") is not None:
            t.center = np.asarray(state["center"], dtype=float)
            t.tol = np.asarray(state["tol"], dtype=float)
        prev = state.get("previous")
        t.previous = None if prev is None else np.asarray(prev, dtype=float)
        t.run = int(state.get("run", 0))
        t.worst = {str(k): int(v) for k, v in state.get("worst", {}).items()}
        if state.get("level") is not None:
            t.level = np.asarray(state["level"], dtype=float)
        t.calm_run = int(state.get("calm_run", 0))
        if state.get("corners") is not None:
            t.corners = np.asarray(state["corners"], dtype=float)
        elif t.level is not None:  # a checkpoint from before quality.vignetting
            t.corners = corner_darkness(t.level[0])
        return t
