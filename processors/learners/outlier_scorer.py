"""Single odd frames: an online anomaly score of embedding projections (river's LODA).

Input is one frame's projection on the stream's reference PCA basis (a
k-vector). Each component is standardised by the reference mean and
standard deviation, then scored by ``river.anomaly.LODA``: an ensemble of
one-dimensional streaming histograms on sparse random projections; the score
is the mean negative log-density (higher = odder).

Why LODA and not HalfSpaceTrees. Measured on seeded Gaussian projections
(k = 8, per-component sd 1/sqrt(i), 1,000 reference frames, 20 odd frames
shifted 5-6 sd on two components among 2,000, quantile 0.99, 3 seeds):

==========================  ========  ==========  =========  ===========
model                       odd hit   clean rate  µs/update  pickle size
==========================  ========  ==========  =========  ===========
HST 10 trees, height 8      0.10      0.007       ~40        170 kB
HST 25 trees, height 10     0.43      0.008       ~160       1.7 MB
LODA 50 cuts, 10 bins       1.00      0.007       ~130       26 kB
Mahalanobis (numpy)         1.00      0.014       ~5         --
==========================  ========  ==========  =========  ===========

HalfSpaceTrees' random axis-aligned half-spaces of height 8 split each of 8
dimensions about once, too coarsely to isolate a few-sd excursion of one
component, and its state is large. Mahalanobis distance is as sensitive on
Gaussian data, but it is what ``PCADetector``'s Hotelling T^2 already
watches; LODA's histograms also model skewed and multi-modal projections.

Threshold. The "outlier" threshold is the ``quantile`` of *cross-fitted*
reference scores: the reference is cut into ``folds`` contiguous blocks
(contiguous, because neighbouring video frames are near-duplicates: an
interleaved split would score a frame by a model that saw its twin), each
block is scored by a model of the other blocks (same seed, so the same
random projections as the final model). In-sample scores are badly
optimistic for LODA: a frame always lands in a bin it helped build, while a
new frame may fall in a gap between bins (density 0); thresholding in-sample
flagged 31 % of clean frames instead of 1 % in that measurement. Cross-fitted
models see 1 − 1/folds of the reference, so the threshold is slightly
conservative and the clean rate falls a little as the live model learns
(measured 1.3 % over the first 500 clean frames, 0.4 % over frames
1,500-2,000, for 1 % expected).

Learning. ``update`` scores the frame, then learns from it only when it is
not an outlier. Learning from everything would let a burst of odd frames
(a smudge on the lens, a new object parked in view) fill the histograms'
empty regions within tens of frames and stop being flagged; the price is
that a permanent change stays flagged until the reference is refitted, which
is the point: the drift detectors alert on it.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal, Self

import numpy as np
from pydantic import model_validator
from river import anomaly

from processors.detectors.state import (
    Bits,
    Float,
    FloatList,
    FloatOrNull,
    NamedCheckpointable,
    RiverModelState,
)
from processors.learners.river_state import dump_model, load_as


class OutlierScorerState(RiverModelState):
    """Checkpoint of an ``OutlierScorer``: river's LODA pickled, standardisation, recent flags."""

    type: Literal["outlier_scorer"] = "outlier_scorer"
    version: Literal[1] = 1
    center: FloatList
    scale: FloatList
    threshold: Float
    signal_cap: Float
    quantile: Float
    window: int
    flags: Bits
    last_score: FloatOrNull
    is_outlier: bool
    n_updates: int
    n_outliers: int

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if len(self.center) != len(self.scale):
            raise ValueError(f"center has {len(self.center)} values, scale {len(self.scale)}")
        if len(self.flags) > self.window:
            raise ValueError(f"flags holds {len(self.flags)} values, window is {self.window}")
        return self


class OutlierScorer(NamedCheckpointable[OutlierScorerState]):
    """Per-frame anomaly score of projections, flagged against a reference quantile.

    Build with ``OutlierScorer.fit(reference)``; the constructor is for
    ``from_state``.

    Attributes
    ----------
    threshold : float
        Score above which a frame is an outlier (cross-fitted reference quantile).
    signal_cap : float
        ``signal_value`` is the score clipped here (see ``signal_value``).
    reference_signal : numpy.ndarray or None
        Cross-fitted ``signal_value`` of every reference frame, to calibrate the
        CUSUM on (``None`` after ``from_state``: calibrate at build time).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(1000, 8))
    >>> scorer = OutlierScorer.fit(ref, seed=0)
    >>> scorer.expected_rate
    0.01...
    >>> _ = scorer.update(rng.normal(size=8))
    >>> scorer.is_outlier
    False
    >>> _ = scorer.update(np.full(8, 6.0))
    >>> scorer.is_outlier
    True
    >>> scorer.signal_value == scorer.signal_cap
    True
    >>> restored = OutlierScorer.from_state(scorer.state())
    >>> x = rng.normal(size=8)
    >>> restored.update(x) == scorer.update(x)
    True
    """

    State = OutlierScorerState

    def __init__(
        self,
        *,
        model: anomaly.LODA,
        center: np.ndarray,
        scale: np.ndarray,
        threshold: float,
        signal_cap: float,
        quantile: float,
        window: int,
        reference_signal: np.ndarray | None = None,
    ) -> None:
        self._model = model
        self._center = [float(v) for v in center]
        self._scale = [float(v) for v in scale]
        self.threshold = float(threshold)
        self.signal_cap = float(signal_cap)
        self.quantile = float(quantile)
        self.window = int(window)
        self.reference_signal = reference_signal
        # Bounded: only the recent rate matters, and state must stay small.
        self._flags: deque[bool] = deque(maxlen=self.window)
        self._last_score = math.nan
        self._is_outlier = False
        self.n_updates = 0
        self.n_outliers = 0

    # -- building -----------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        reference: np.ndarray,
        *,
        seed: int = 0,
        quantile: float = 0.99,
        window: int = 500,
        folds: int = 5,
        n_bins: int = 10,
        n_cuts: int = 50,
    ) -> OutlierScorer:
        """Learn the reference projections (n × k) and calibrate the outlier threshold.

        Parameters
        ----------
        reference
            Reference projections, one row per frame, in time order.
        seed
            LODA's random projections.
        quantile
            Reference quantile of cross-fitted scores used as the threshold;
            the expected clean outlier rate is ``1 - quantile``.
        window
            Length of the recent window of ``outlier_rate``.
        folds
            Contiguous cross-fitting blocks.
        n_bins, n_cuts
            LODA's histogram bins and number of random projections.
        """
        ref = np.asarray(reference, dtype=np.float64)
        if ref.ndim != 2 or ref.shape[1] < 1:
            raise ValueError(f"reference must be (n, k), got shape {ref.shape}")
        if not np.isfinite(ref).all():
            raise ValueError("reference contains non-finite values")
        if not 0.5 <= quantile < 1.0:
            raise ValueError(f"quantile must be in [0.5, 1), got {quantile!r}")
        n = ref.shape[0]
        # A quantile needs exceedances to be estimated: below ~5 the threshold is noise.
        # (The tolerance admits 1 - 5/n itself: 1 - (1 - 5/400) is 5/400 - 4e-17.)
        if n * (1.0 - quantile) < 5 - 1e-9 or n < 2 * folds:
            raise ValueError(
                f"{n} reference frames are too few for quantile {quantile} "
                f"(need n * (1 - quantile) >= 5)"
            )
        center = ref.mean(axis=0)
        sd = ref.std(axis=0)
        # A constant component (k above the reference's rank) must not divide by zero.
        scale = np.maximum(sd, max(1e-9 * float(sd.max()), 1e-12))
        rows = [_features(r, center, scale) for r in ref]

        def new_model() -> anomaly.LODA:
            return anomaly.LODA(n_bins=int(n_bins), n_random_cuts=int(n_cuts), seed=int(seed))

        block = np.arange(n) * folds // n
        scores = np.empty(n)
        for j in range(folds):
            m = new_model()
            for i in np.flatnonzero(block != j):
                m.learn_one(rows[i])
            for i in np.flatnonzero(block == j):
                scores[i] = m.score_one(rows[i])
        threshold = float(np.quantile(scores, quantile))
        cap = threshold + max(threshold - float(np.median(scores)), 1e-12)
        model = new_model()
        for r in rows:
            model.learn_one(r)
        return cls(
            model=model,
            center=center,
            scale=scale,
            threshold=threshold,
            signal_cap=cap,
            quantile=quantile,
            window=window,
            reference_signal=np.minimum(scores, cap),
        )

    # -- streaming ----------------------------------------------------------------

    @property
    def k(self) -> int:
        """Length of the projection vectors."""
        return len(self._center)

    def score(self, x: np.ndarray | list[float]) -> float:
        """Score of one projection, without learning or changing any state."""
        return float(self._model.score_one(_features(x, self._center, self._scale)))

    def update(self, x: np.ndarray | list[float]) -> float:
        """Score one frame's projection (k floats); learn from it unless it is an outlier.

        Raises ``ValueError`` on a wrong length or non-finite values (dead-letter
        those before calling).
        """
        feats = _features(x, self._center, self._scale)
        s = float(self._model.score_one(feats))
        out = s > self.threshold
        if not out:
            self._model.learn_one(feats)
        self._last_score = s
        self._is_outlier = out
        self._flags.append(out)
        self.n_updates += 1
        self.n_outliers += out
        return s

    @property
    def last_score(self) -> float:
        """Score of the last update (``nan`` before any)."""
        return self._last_score

    @property
    def is_outlier(self) -> bool:
        """Whether the last update's frame scored above ``threshold``."""
        return self._is_outlier

    @property
    def signal_value(self) -> float:
        """The per-frame scalar to feed a one-sided (``side="up"``) calibrated CUSUM.

        The score clipped at ``signal_cap`` (= threshold + (threshold − median
        reference score)). Why this scalar:

        - continuous, unlike the 0/1 flag: at a 1 % rate the flag's robust
          scale (MAD) is 0, so a standardising CUSUM cannot be calibrated on it,
          and a flag ignores a general rise of scores that stays below threshold;
        - clipped, unlike the raw score: LODA gives a frame outside every
          histogram a huge score (−log 1e-12 per projection), which alone
          would exceed any CUSUM threshold, so one odd frame would alert.
          Clipped, single odd frames are the ``is_outlier`` flag's business and
          the CUSUM alerts on a sustained rise (many odd frames, or all frames
          a bit odder);
        - calibrate the CUSUM on ``reference_signal`` (cross-fitted), never on
          in-sample scores (see the module docstring).

        ``0.0`` before any update.
        """
        if math.isnan(self._last_score):
            return 0.0
        return min(self._last_score, self.signal_cap)

    @property
    def outlier_rate(self) -> float:
        """Fraction of outliers over the last ``window`` updates (0.0 before any)."""
        return sum(self._flags) / len(self._flags) if self._flags else 0.0

    @property
    def n_window(self) -> int:
        """Updates in the recent window (≤ ``window``)."""
        return len(self._flags)

    @property
    def expected_rate(self) -> float:
        """Clean outlier rate the threshold was calibrated for: ``1 - quantile``."""
        return 1.0 - self.quantile

    # -- checkpoint ---------------------------------------------------------------

    def _to_state(self) -> OutlierScorerState:
        """``reference_signal`` is not kept."""
        blob = dump_model(self._model)
        return OutlierScorerState(
            river_version=blob["river_version"],
            pickle=blob["pickle"],
            center=self._center,
            scale=self._scale,
            threshold=self.threshold,
            signal_cap=self.signal_cap,
            quantile=self.quantile,
            window=self.window,
            flags=list(self._flags),
            last_score=self._last_score,
            is_outlier=self._is_outlier,
            n_updates=self.n_updates,
            n_outliers=self.n_outliers,
        )

    @classmethod
    def _from_state(cls, state: OutlierScorerState) -> Self:
        obj = cls(
            model=load_as(anomaly.LODA, state.river_version, state.pickle, f"{cls.name} model"),
            center=np.asarray(state.center, dtype=np.float64),
            scale=np.asarray(state.scale, dtype=np.float64),
            threshold=state.threshold,
            signal_cap=state.signal_cap,
            quantile=state.quantile,
            window=state.window,
        )
        obj._flags.extend(state.flags)
        obj._last_score = state.last_score
        obj._is_outlier = state.is_outlier
        obj.n_updates = state.n_updates
        obj.n_outliers = state.n_outliers
        return obj


def _features(
    x: np.ndarray | list[float], center: np.ndarray | list[float], scale: np.ndarray | list[float]
) -> dict[int, float]:
    """Standardised projection as river's feature dict (Python floats: exact and fast)."""
    v = np.asarray(x, dtype=np.float64)
    if v.shape != (len(center),):
        raise ValueError(f"projection must have {len(center)} components, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("projection contains non-finite values")
    z = (v - np.asarray(center)) / np.asarray(scale)
    return dict(enumerate(z.tolist()))
