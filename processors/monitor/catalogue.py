"""The signal catalogue: every signal a stream's monitor watches, in one table.

This is the one place to add a signal. A ``SignalSpec`` names the signal,
the events that carry it, how its value is read from such an event, the
detector kind that watches it (``processors.detector_registry``), the
smallest change worth an alert (its *tolerance*), whether its baseline
tracks slow wander, and the seed of its calibration's simulations.

The seed is explicit: calibrated thresholds (and so every detection index
and alert id) depend on it, and a seed that was a signal's position in a
list changed whenever a signal was inserted before it. ``test_catalogue``
checks that seeds are unique and the README's signal table is the one
``readme_table()`` renders.

Order matters in one way only: within one event, signals are updated (and
their alerts listed) in catalogue order.

Adding a scalar signal read from one event (worked example in
``docs/architecture.md``): append a ``SignalSpec`` with an ``extract``
function and the next free ``seed``, add its test, and regenerate the README
table with ``python -m processors.monitor --write-readme``.
Signals whose value needs the monitor's memory (the embedding reference, the
class-id table, the label join) have ``extract=None`` and are computed by
``processors.monitor.features``.

Examples
--------
>>> spec = SPECS["quality.brightness"]
>>> spec.kind, spec.seed, spec.tolerance, spec.tracking
('cusum', 6, (0.25, 3.0), True)
>>> from schemas.events import Embedding
>>> e = Embedding(event_id="e", stream_id="s", frame_id="f", vector=[1.0],
...               quality={"brightness": 80.0})
>>> spec.extract(e)
80.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from processors.image_quality import QUALITY_KEYS
from processors.signal_tracker import TWIN_K
from schemas.events import Embedding, FrameError, Label, Prediction

MonitorEvent = Embedding | FrameError | Prediction | Label
Extractor = Callable[[MonitorEvent], float | None]

# Embeddings come from two different spaces: driftline's embedder (Embedding
# events) and the deployed model's own penultimate layer (Prediction.embedding
# from edge devices). Each gets its own reference and signals; mixing them
# would make the first vector of either fix the dimension for both.
EMBEDDING_SOURCES = ("embedding", "edge")
# The image-quality values that are signals (``processors.image_quality``
# also measures width, height and encoded size, read by the two signals below).
QUALITY_METRICS = tuple(k for k in QUALITY_KEYS if k not in ("width", "height", "encoded_kb"))
# Not scalar signals, but names alerts carry: the retrain head's McNemar test
# (one alert per episode) and the registry's notice of a new model version.
RETRAIN_SIGNAL = "performance.retrain_gain"
VERSION_SIGNAL = "model.version"
# Camera health (processors.monitor.camera_health): a publisher's status events
# and a stream without input for SILENT_AFTER_S seconds of the worker's clock.
STATUS_SIGNAL = "camera.status"
SILENT_SIGNAL = "camera.silent"


@dataclass(frozen=True)
class SignalSpec:
    """One signal of the catalogue.

    Parameters
    ----------
    name : str
        ``<family>.<signal>``, e.g. ``quality.brightness``.
    kind : str
        Detector kind (``processors.detector_registry.make_detector``).
    seed : int
        Seed of its calibration's simulations; unique, never reused.
    events : tuple of type
        The event types that carry it.
    extract : callable or None
        ``extract(event) -> float | None`` (None: this event has no value);
        None for signals computed from the monitor's memory.
    tolerance : (float, float) or None
        ``(relative, absolute)`` smallest change worth an alert
        (``processors.signal_tracker.ScalarSignal``).
    tracking : bool
        Compare against a tracking baseline (half-life ``BASELINE_HALFLIFE``)
        instead of the frozen reference.
    reference : str
        The ``MonitorSettings`` field giving its reference length.
    twin_k : float
        Allowance of its fixed-reference twin in tolerances
        (``processors.signal_tracker.TWIN_K``; tracking CUSUMs only).
    smooth : float
        Half-life, in updates, of the EWMA the signal watches instead of its
        raw values (0: raw; ``processors.signal_tracker.ScalarSignal``).
    what, why : str
        The README's signal table: what the value is, why this detector.
    """

    name: str
    kind: str
    seed: int
    events: tuple[type, ...]
    extract: Extractor | None
    tolerance: tuple[float, float] | None
    tracking: bool
    what: str
    why: str
    reference: Literal["reference_size", "class_mix_reference_size"] = "reference_size"
    twin_k: float = TWIN_K
    smooth: float = 0.0

    @property
    def calibrated(self) -> bool:
        """Whether its threshold is drawn from the stream's false-alarm budget (ADWIN's is not)."""
        return self.kind != "adwin"

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]


# -- extractors of stateless signals --------------------------------------------------


def _quality(metric: str) -> Extractor:
    def extract(e: MonitorEvent) -> float | None:
        q = e.quality if isinstance(e, Embedding) else {}
        return float(q[metric]) if metric in q else None

    extract.__name__ = f"quality_{metric}"
    return extract


def _undecodable(e: MonitorEvent) -> float | None:
    # 1 for a frame the embedder could not use, 0 for every embedded frame.
    return 1.0 if isinstance(e, FrameError) else 0.0


def _resolution(e: MonitorEvent) -> float | None:
    assert isinstance(e, Embedding)
    width, height = e.quality.get("width"), e.quality.get("height")
    if width and height and width > 0 and height > 0:
        return math.log2(width * height)
    return None


def _compression(e: MonitorEvent) -> float | None:
    assert isinstance(e, Embedding)
    kib = e.quality.get("encoded_kb")
    return math.log(kib) if kib is not None and kib > 0 else None


def _confidence(e: MonitorEvent) -> float | None:
    assert isinstance(e, Prediction)
    return float(e.confidence)


def _entropy(e: MonitorEvent) -> float | None:
    assert isinstance(e, Prediction)
    return scores_entropy(e.scores) if e.scores else None


def _boxes(e: MonitorEvent) -> float | None:
    assert isinstance(e, Prediction)
    return float(len(e.boxes)) if e.boxes is not None else None


def scores_entropy(scores: dict[str, float]) -> float:
    """Entropy (nats) of a prediction's class ``scores``, completed where truncated.

    Models often report only their top few classes. The mass they leave out
    (``1 - sum``) is spread evenly over as many unlisted classes as needed for
    none to exceed the smallest listed score: the largest entropy consistent
    with what was reported. (Counting the left-out mass as one class instead
    made a model that grew *less* certain look *more* certain: flatter scores
    leave more mass out of the top five, and one big lump has low entropy.)

    >>> round(scores_entropy({"a": 0.5, "b": 0.5}), 4)
    0.6931
    >>> round(scores_entropy({"a": 0.6, "b": 0.2}), 4)   # 0.2 left out: one more class of 0.2
    0.9503
    >>> scores_entropy({"a": 0.3, "b": 0.1}) > scores_entropy({"a": 0.6, "b": 0.2})
    True
    """
    # Plain Python: a handful of values, called once per prediction (numpy's
    # per-call overhead was most of the monitor's per-prediction cost here).
    p = [min(max(float(v), 0.0), 1.0) for v in scores.values()]
    total = sum(p)
    if total > 1.0:
        p = [v / total for v in p]
    p = [v for v in p if v > 0.0]
    h = -sum(v * math.log(v) for v in p)
    rest = max(0.0, 1.0 - sum(p))
    if rest > 1e-12:
        smallest = min(p) if p else rest
        m = max(1, math.ceil(rest / max(smallest, 1e-12) - 1e-9))
        h += rest * math.log(m / rest)
    return h


# -- the catalogue --------------------------------------------------------------------

# Tolerances: a camera's natural variation over hours (lighting cycles, the
# view wandering, people passing) exceeds what a short reference shows; these
# floors keep that variation from alerting while a real change (a 40%
# darkening, blur, a moved camera) clears them several times over. Measured on
# simulated cameras over real photos and on vtest.avi: see bench/README.md.
_QUALITY_TOLERANCE: dict[str, tuple[float, float]] = {
    "brightness": (0.25, 3.0),
    "contrast": (0.25, 2.0),
    "sharpness": (0.0, 1.2),
    "saturation": (0.25, 0.05),
    "colourfulness": (0.25, 3.0),
    "noise": (1.0, 0.6),
    # ln(R/B) and ln(G/sqrt(RB)): a colour cast R x1.3 / B x0.7 moves warmth by 0.62.
    "warmth": (0.0, 0.15),
    "tint": (0.0, 0.12),
}
_QUALITY_WHAT = {
    "brightness": ("mean luma (BT.601), 0-255", "exposure: a light failed, the sun came out, "
                   "a hand over the lens"),
    "contrast": ("standard deviation of luma", "haze, fog, a washed-out or dirty lens"),
    "sharpness": ("log1p of the variance of the 3×3 Laplacian of luma", "focus lost, blur, "
                  "a smudged lens"),
    "saturation": ("mean HSV saturation, 0-1", "colour lost (IR mode, a failing sensor)"),
    "colourfulness": ("Hasler & Süsstrunk (2003) M3", "colour lost or cast"),
    "noise": ("Immerkær (1996) noise sigma, grey levels", "sensor noise: gain up in low light, "
              "a failing sensor"),
    "warmth": ("white balance, red vs blue: ln((R+1)/(B+1))", "colour casts, a failing IR-cut "
               "filter (R×1.3 / B×0.7 moves it by +0.62)"),
    "tint": ("white balance, green vs magenta: ln((G+1)/√((R+1)(B+1)))", "colour casts"),
}
_QUALITY_SEED = {m: 6 + i for i, m in enumerate(QUALITY_METRICS)}
# The slow twin's allowance for the two values a haze or a dust layer moves:
# 1.5 tolerances, not TWIN_K's 2. A haze ramped in over 1,500 frames moved
# motorcycle_left's brightness by 2.35 tolerances and its contrast by 2.4, the
# twin (tracking 10x slower) followed some of it and never cleared 2. TWIN_K
# 1.5 on every signal raised one false alarm in 4.98 camera-days (the twin on
# quality.colourfulness): there the long run's colour-temperature swing
# lives. Measured: bench/README.md, issue #11.
_QUALITY_TWIN_K = {"brightness": 1.5, "contrast": 1.5}
# output.confidence watches its EWMA, half-life 150 predictions (15 s at 10
# frames/s), with a tolerance floor of 0.07 and a slow twin accumulating beyond
# 1.2 tolerances: on the tuning cameras' clean hours (simulated classifier,
# seeds 21-24) the average strayed at most 0.057 from the tracking baseline and
# 0.067 from the twin's (10x slower), so both bands sit >= 1.2x above what a
# clean camera did. A half-life of 75 with a floor of 0.05 caught more on those
# cameras and raised 5 false alarms in an hour on another (its average strays
# 0.093; bench/README.md, bench/output_probes.py).
_CONFIDENCE_SMOOTH = 150.0
_CONFIDENCE_TWIN_K = 1.2


def _embedding_specs(source: str, event: type, seeds: tuple[int, int, int]) -> list[SignalSpec]:
    origin = "the frame's embedding" if source == "embedding" else "the edge device's embedding"
    return [
        SignalSpec(
            f"{source}.distance", "cusum", seeds[0], (event,), None, (1.5, 0.0), True,
            what=f"cosine distance of {origin} to the reference mean",
            why="whole-scene change: camera moved, lighting, weather",
        ),
        SignalSpec(
            f"{source}.residual", "cusum", seeds[1], (event,), None, (1.5, 0.0), True,
            what=f"energy of {origin} outside the reference PCA basis",
            why="something new the reference never varied along",
        ),
        SignalSpec(
            # The river outlier scorer's clipped score (processors.embedding_learners):
            # one-sided, a fall back to normal after a change is not a second change.
            f"{source}.outlier", "cusum_up", seeds[2], (event,), None, (0.5, 0.0), True,
            what="river LODA anomaly score of the PCA projection"
            + ("" if source == "embedding" else " (with `MONITOR__EDGE_LEARNERS`)"),
            why="a sustained rise of odd frames; single odd frames are flagged against a "
            "cross-fitted reference quantile and listed in the alert's `examples_after`",
        ),
    ]


SIGNALS: tuple[SignalSpec, ...] = (
    *_embedding_specs("embedding", Embedding, (0, 1, 4)),
    *(
        SignalSpec(
            f"quality.{m}", "cusum", _QUALITY_SEED[m], (Embedding,), _quality(m),
            _QUALITY_TOLERANCE[m], True, what=_QUALITY_WHAT[m][0], why=_QUALITY_WHAT[m][1],
            twin_k=_QUALITY_TWIN_K.get(m, TWIN_K),
        )
        for m in QUALITY_METRICS
    ),
    SignalSpec(
        "quality.undecodable", "adwin", 20, (Embedding, FrameError), _undecodable, None, False,
        what="1 per frame the embedder could not use, 0 per embedded frame",
        why="a camera that starts sending broken frames (close to independent: ADWIN)",
    ),
    SignalSpec(
        # log2(pixels): any resolution change (x0.5 per side = -2) clears it many times.
        "quality.resolution", "cusum", 14, (Embedding,), _resolution, (0.0, 0.1), True,
        what="log2 of the decoded pixel count",
        why="a camera reconfigured to another resolution or crop",
    ),
    SignalSpec(
        # ln(KiB): ±30% around the tracking baseline is the scene's own detail changing.
        "quality.compression", "cusum", 21, (Embedding,), _compression, (0.0, 0.3), True,
        what="ln of the encoded frame's size",
        why="a bitrate or JPEG-quality cut (q10 halves the bytes of the same scene) before "
        "the pixels look wrong",
    ),
    *_embedding_specs("edge", Prediction, (2, 3, 5)),
    SignalSpec(
        # Page-Hinkley (river) compares with the mean since its reset; a camera's
        # lighting cycle moves a classifier's confidence by as much as a worse
        # model does: PH fired 13 times in 76,000 clean frames where this CUSUM
        # fired once, catching the drop faster (bench/README.md).
        # Averaged (issue #11): per frame, a classifier's confidence varies by
        # ~0.09 around its level, so the tolerance (2.5 of those) was 0.17-0.27:
        # a drop of 0.82 -> 0.71 never accumulated, one of 0.78 -> 0.51 was
        # absorbed by the tracking baseline on one camera. See _CONFIDENCE_SMOOTH.
        "output.confidence", "cusum", 15, (Prediction,), _confidence, (0.0, 0.07), True,
        what="the deployed model's top-class confidence",
        why="the model's own uncertainty moves before accuracy is known",
        smooth=_CONFIDENCE_SMOOTH, twin_k=_CONFIDENCE_TWIN_K,
    ),
    SignalSpec(
        "output.entropy", "cusum", 16, (Prediction,), _entropy, (0.0, 0.4), True,
        what="entropy of the deployed model's `scores` (a truncated top-k is completed with "
        "the largest entropy it allows)",
        why="flatter or sharper class scores; caught the confidence-drop shift first in 3 of "
        "4 scenes",
    ),
    SignalSpec(
        # MixCusum (processors/detectors/mix_cusum.py); was chi2_mix, blind to a class
        # tripling on a wandering mix (bench/README.md, model-output shifts).
        "output.class_mix", "mix_cusum", 17, (Prediction,), None, None, False,
        reference="class_mix_reference_size",
        what="predicted top class: per class (classes under 5% of the reference pooled) a "
        "CUSUM of its share quadrupling or falling to a quarter, against the mix of 5 minutes "
        "earlier (tracked, half-life 5 minutes at 10 predictions/s)",
        why="a class whose share changes and stays (a new route, a vanished object), new or "
        "vanished classes; the mix's own slow wander is followed",
    ),
    SignalSpec(
        # Clean cameras never exceeded 0.05; half the frames of unseen classes: 0.26 in 50.
        "output.new_classes", "tolerance_up", 22, (Prediction,), None, (0.0, 0.15), True,
        what="share of the last 100 predictions whose class first appeared in the last 300 "
        "(longer: until `MIN_DURATION` can confirm it; no longer new once reported)",
        why="a class-mix change where the mix test must be blunt: a street camera's top-1 "
        "class flickers among dozens of classes",
    ),
    SignalSpec(
        "output.boxes", "cusum", 18, (Prediction,), _boxes, (0.25, 1.0), True,
        what="boxes per frame (detection models)",
        why="crowding, a detector that stopped seeing",
    ),
    # -- spatially resolved quality and camera health (issue #11) -------------------
    *(
        SignalSpec(
            # Deviations in the tile's own tolerance units, less the median tile's:
            # one tolerance beyond the tracking baseline is the smallest change.
            f"quality.tile_{m}", "cusum_up", seed, (Embedding,), None, (0.0, tol), True,
            what=f"the worst of 4×4 tiles: its {m} against its own reference, in its own "
            "tolerances, less the median tile's (the alert names the tile)",
            why=why,
        )
        # Seed 23 is docs/architecture.md's worked example. Tile contrast is
        # measured but not a signal: 2 false alarms in 10,400 clean frames of
        # wandering simulated cameras where brightness and sharpness had none.
        for m, seed, tol, why in (
            ("brightness", 24, 1.5, "vignetting, a light or shadow over part of the view"),
            ("sharpness", 25, 1.0, "a smudge or a focus fault over part of the lens (the "
             "whole frame's sharpness barely moves)"),
        )
    ),
    SignalSpec(
        # Live frames differ by sensor noise at least; a stuck encoder repeats them.
        "quality.frozen", "tolerance_up", 26, (Embedding,), None, (0.0, 1.0), False,
        what="log1p of the run of consecutive frames whose tile statistics repeat exactly",
        why="a frozen feed: the camera or its encoder repeats one picture",
    ),
    SignalSpec(
        # ln(centre / corner) luma: 0.1 is a 10% darkening of three corners
        # against the centre (a vignette to 25% at the very corners moves it by
        # several); a passer-by darkens one corner and cannot move it.
        "quality.vignetting", "cusum_up", 27, (Embedding,), None, (0.0, 0.1), True,
        what="corner darkness: log mean luma of the centre 2×2 tiles (median) less a corner "
        "tile's, the 3rd darkest of the four corners (the alert names the dark corners)",
        why="vignetting: a lens hood, housing or dome edge darkening the corners together",
    ),
    SignalSpec(
        "performance.error", "adwin", 19, (Label,), None, None, False,
        what="1 when a label disagrees with the prediction it names",
        why="the error rate once labels arrive (labels are close to independent: ADWIN)",
    ),
)
SPECS: dict[str, SignalSpec] = {s.name: s for s in SIGNALS}
CALIBRATED: tuple[str, ...] = tuple(s.name for s in SIGNALS if s.calibrated)
# Stateless extractors by event type, in catalogue order.
EXTRACTORS: dict[type, tuple[SignalSpec, ...]] = {
    t: tuple(s for s in SIGNALS if t in s.events)
    for t in (Embedding, FrameError, Prediction, Label)
}

_README_BEGIN = "<!-- signal table: generated by `python -m processors.monitor` -->"
_README_END = "<!-- end of signal table -->"
_KIND_TEXT = {
    "cusum": "CUSUM, calibrated",
    "cusum_up": "one-sided CUSUM, calibrated",
    "tolerance_up": "one-sided CUSUM beyond its tolerance",
    "chi2_mix": "chi-squared, calibrated",
    "adwin": "ADWIN (river)",
}


# Alerts that are not scalar signals (no detector of their own in SIGNALS).
_ALERT_ONLY = (
    (RETRAIN_SIGNAL, "an incremental head (river softmax regression on the PCA projections) "
     "trained on the labels, predicting each frame before learning it",
     "one-sided exact McNemar test on the last 500 labelled frames, α = 0.01",
     "*would retraining help?* One alert when the head becomes significantly more accurate "
     "than the deployed model on the same frames, with the deployed model's accuracy by class"),
    (VERSION_SIGNAL, "the stream reports a model version it had not before", "info notice",
     "a deployment: the new version's monitor warms up on its own events first"),
    (STATUS_SIGNAL, "`camera_status` events from `driftline publish`: online, reconnecting, "
     "offline", "one alert per episode: reconnecting (warning), back online with the gap "
     "(info), offline (info; critical when it gave up reconnecting)",
     "the camera dropped (RTSP server restarted, cable pulled) and how long frames were "
     "missing"),
    (SILENT_SIGNAL, "seconds since the stream's last input, by the worker's wall clock",
     "beyond `SILENT_AFTER_S` (default 60 s); never in replay, which has no wall clock",
     "a camera or publisher that died without a word"),
)


def readme_table() -> str:
    """The README's signal table (markdown), between its markers."""
    rows = [_README_BEGIN, "", "| signal | value | detector | tolerance floor | why |",
            "|---|---|---|---|---|"]
    for s in SIGNALS:
        tol = "—"
        if s.tolerance is not None:
            rel, absolute = s.tolerance
            tol = (f"max({rel:g}×\\|ref\\|, {absolute:g})" if rel and absolute
                   else f"{rel:g}×\\|ref\\|" if rel else f"{absolute:g}")
        detector = _KIND_TEXT.get(s.kind, s.kind) + (", tracking baseline" if s.tracking else "")
        what = s.what + (f"; its EWMA, half-life {s.smooth:g} events" if s.smooth else "")
        rows.append(f"| `{s.name}` | {what} | {detector} | {tol} | {s.why} |")
    for name, what, detector, why in _ALERT_ONLY:
        rows.append(f"| `{name}` | {what} | {detector} | — | {why} |")
    rows += ["", _README_END]
    return "\n".join(rows)


def replace_readme_table(readme: str) -> str:
    """``readme`` with its signal table replaced by ``readme_table()``."""
    head, sep, rest = readme.partition(_README_BEGIN)
    _, sep2, tail = rest.partition(_README_END)
    if not sep or not sep2:
        raise ValueError("README has no signal-table markers")
    return head + readme_table() + tail
