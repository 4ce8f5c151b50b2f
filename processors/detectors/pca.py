"""Embedding drift: a PCA reference, Hotelling T^2 and SPE, watched by calibrated CUSUMs.

``PCAReference`` keeps what a reference set of embeddings looked like in
O(d·k) memory: the mean, the top-``k`` principal directions and the variance
along each. Every new embedding costs O(d·k) and yields two scores:

- **Hotelling T^2** -- ``sum_j (v_j . (x - mean))^2 / var_j``: how unusual
  the embedding is *inside* the subspace the reference varied in (the scene
  moved along familiar directions, but further than before);
- **SPE** (squared prediction error) -- ``|x - mean|^2 - sum_j (v_j . (x -
  mean))^2``: energy *outside* that subspace (something the reference never
  showed: blur, a colour cast, an occluding patch).

``PCADetector`` feeds ``log`` of each score (both are sums of squares,
strongly right-skewed; the log makes them close to symmetric) to its own
``Cusum``, each calibrated on out-of-sample reference scores with half the
false-alarm budget (``split_budget``).
"""

from __future__ import annotations

import math
from typing import Any, Literal, Self

import numpy as np
from pydantic import model_validator

from processors.calibration import split_budget
from processors.detectors.base import Detector, DetectorState
from processors.detectors.cusum import Cusum, CusumState
from processors.detectors.state import Checkpointable, Packed, StateModel

_EPS = 1e-12
Fired = Literal["", "t2", "spe"]


class PCAReferenceState(StateModel):
    """Checkpoint of a ``PCAReference``: float64 arrays base64-packed, exact."""

    type: Literal["pca_reference"] = "pca_reference"
    version: Literal[1] = 1
    dim: int
    k: int
    normalize: bool
    mean: Packed
    basis: Packed
    variance: Packed

    @model_validator(mode="after")
    def _shapes(self) -> Self:
        self._check_size("mean", (self.dim,))
        self._check_size("basis", (self.k, self.dim))
        self._check_size("variance", (self.k,))
        return self


class PCAReference(Checkpointable[PCAReferenceState]):
    """Mean, top-``k`` basis and per-component variance of reference embeddings.

    Parameters
    ----------
    mean : ndarray, shape (d,)
    basis : ndarray, shape (k, d)
        Orthonormal rows.
    variance : ndarray, shape (k,)
        Variance of the reference along each row of ``basis``.
    normalize : bool
        L2-normalise embeddings before scoring (cosine geometry).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(300, 16)) * np.r_[np.full(4, 5.0), np.ones(12)]
    >>> pca = PCAReference.fit(ref, k=4, normalize=False)
    >>> t2, spe = pca.scores(ref[0])
    >>> t2_far, spe_far = pca.scores(ref[0] + 10 * pca.basis[0])
    >>> bool(t2_far > t2), bool(abs(spe_far - spe) < 1e-9)
    (True, True)
    """

    State = PCAReferenceState

    def __init__(
        self, mean: np.ndarray, basis: np.ndarray, variance: np.ndarray, *, normalize: bool
    ) -> None:
        self.mean = np.asarray(mean, dtype=float)
        self.basis = np.asarray(basis, dtype=float)
        self.variance = np.maximum(np.asarray(variance, dtype=float), _EPS)
        self.normalize = bool(normalize)
        if self.basis.ndim != 2 or self.basis.shape[1] != self.mean.size:
            raise ValueError(
                f"basis shape {self.basis.shape} does not match mean {self.mean.shape}"
            )

    @property
    def dim(self) -> int:
        """Embedding dimension ``d``."""
        return int(self.mean.size)

    @property
    def k(self) -> int:
        """Number of principal components kept."""
        return int(self.basis.shape[0])

    @classmethod
    def fit(cls, vectors: np.ndarray, k: int = 8, *, normalize: bool = True) -> PCAReference:
        """Fit on ``(n, d)`` reference embeddings; ``k`` is capped at ``min(n - 1, d)``."""
        x = _prepare(np.asarray(vectors, dtype=float), normalize)
        if x.ndim != 2 or x.shape[0] < 3:
            raise ValueError(f"need an (n >= 3, d) array of embeddings, got shape {x.shape}")
        mean = x.mean(axis=0)
        k = max(1, min(int(k), x.shape[0] - 1, x.shape[1]))
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        var = s[:k] ** 2 / (x.shape[0] - 1)
        return cls(mean, vt[:k].copy(), var, normalize=normalize)

    def scores(self, vector: np.ndarray | list[float]) -> tuple[float, float]:
        """``(T^2, SPE)`` of one embedding, O(d·k)."""
        x = _prepare(np.asarray(vector, dtype=float), self.normalize)
        if x.shape != self.mean.shape or not np.isfinite(x).all():
            raise ValueError(f"embedding must be {self.dim} finite values, got shape {x.shape}")
        c = x - self.mean
        p = self.basis @ c
        t2 = float(np.sum(p * p / self.variance))
        spe = max(float(c @ c) - float(p @ p), 0.0)
        return t2, spe

    def scores_many(self, vectors: np.ndarray) -> np.ndarray:
        """``(n, 2)`` array of ``(T^2, SPE)`` for ``(n, d)`` embeddings."""
        x = _prepare(np.asarray(vectors, dtype=float), self.normalize)
        c = x - self.mean
        p = c @ self.basis.T
        t2 = np.sum(p * p / self.variance, axis=1)
        spe = np.maximum(np.einsum("ij,ij->i", c, c) - np.einsum("ij,ij->i", p, p), 0.0)
        return np.stack([t2, spe], axis=1)

    def _to_state(self) -> PCAReferenceState:
        return PCAReferenceState(
            dim=self.dim,
            k=self.k,
            normalize=self.normalize,
            mean=self.mean,
            basis=self.basis,
            variance=self.variance,
        )

    @classmethod
    def _from_state(cls, state: PCAReferenceState) -> Self:
        return cls(state.mean, state.basis, state.variance, normalize=state.normalize)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (or ``x`` itself, 1-d) scaled to unit L2 norm (zero rows stay zero).

    >>> l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, _EPS)


def _prepare(x: np.ndarray, normalize: bool) -> np.ndarray:
    return l2_normalise(x) if normalize else x


def cross_fitted_distance(vectors: np.ndarray) -> np.ndarray:
    """Cosine distance of each reference embedding to the mean direction of the *other* half.

    A frame is closer to a mean it helped compute: on the ``vtest`` camera the
    in-sample distance-to-reference-mean averaged 0.111 while later clean
    frames averaged 0.130 (and the cross-fitted reference 0.135), so a
    detector calibrated on in-sample distances fired 8x over its budget.
    Calibrate distance detectors on these values instead (time order kept).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(200, 64)) + 3.0
    >>> m = ref.mean(axis=0) / np.linalg.norm(ref.mean(axis=0))
    >>> in_sample = 1 - (ref / np.linalg.norm(ref, axis=1, keepdims=True)) @ m
    >>> bool(cross_fitted_distance(ref).mean() > in_sample.mean())
    True
    """
    v = _prepare(np.asarray(vectors, dtype=float), True)
    if v.ndim != 2 or v.shape[0] < 4:
        raise ValueError(f"need an (n >= 4, d) array of embeddings, got shape {v.shape}")
    half = v.shape[0] // 2
    first, second = v[:half], v[half:]

    def direction(a: np.ndarray) -> np.ndarray:
        m = a.mean(axis=0)
        return m / max(float(np.linalg.norm(m)), _EPS)

    return np.concatenate([1.0 - first @ direction(second), 1.0 - second @ direction(first)])


def log_scores(scores: np.ndarray) -> np.ndarray:
    """``log(score + eps)``: what the CUSUMs watch (sums of squares are right-skewed)."""
    return np.log(np.asarray(scores, dtype=float) + _EPS)


class PCADetectorState(DetectorState):
    """Checkpoint of a ``PCADetector``: its reference and both CUSUMs."""

    type: Literal["pca_cusum"] = "pca_cusum"
    version: Literal[1] = 1
    reference: PCAReferenceState
    t2: CusumState
    spe: CusumState
    fired: Fired = ""


class PCADetector(Detector[PCADetectorState]):
    """Two calibrated CUSUMs on ``log T^2`` and ``log SPE`` of each embedding.

    ``update(vector)`` takes one embedding (``d`` floats). ``statistic`` is
    the larger of the two CUSUMs' ``statistic / threshold`` and ``threshold``
    is 1; ``fired`` names the score that fired (``"t2"`` or ``"spe"``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scale = np.r_[np.full(4, 3.0), np.ones(28)]
    >>> ref = rng.normal(size=(600, 32)) * scale + 10
    >>> det = PCADetector.calibrated(ref, ert=5000, k=4)
    >>> shifted = rng.normal(size=(200, 32)) * scale * 1.6 + 10   # more variance everywhere
    >>> hit = next(i for i, v in enumerate(shifted) if (det.update(v), det.drift_detected)[1])
    >>> hit < 20, det.fired
    (True, 'spe')
    """

    State = PCADetectorState

    def __init__(self, reference: PCAReference, t2: Cusum, spe: Cusum) -> None:
        super().__init__()
        self.reference = reference
        self.t2 = t2
        self.spe = spe
        self.fired: Fired = ""

    @property
    def statistic(self) -> float:
        """``max`` over both CUSUMs of ``statistic / threshold`` (fires above 1)."""
        return max(self.t2.statistic / self.t2.threshold, self.spe.statistic / self.spe.threshold)

    @property
    def threshold(self) -> float:
        """1.0 (see ``statistic``)."""
        return 1.0

    @property
    def change_offset(self) -> int:
        """The firing CUSUM's change-point estimate."""
        return {"t2": self.t2, "spe": self.spe}.get(self.fired, self.t2).change_offset

    def _update(self, x: Any) -> bool:
        t2, spe = self.reference.scores(x)
        self.t2.update(math.log(t2 + _EPS))
        self.spe.update(math.log(spe + _EPS))
        if self.t2.drift_detected or self.spe.drift_detected:
            a = self.t2.statistic / self.t2.threshold if self.t2.drift_detected else -1.0
            b = self.spe.statistic / self.spe.threshold if self.spe.drift_detected else -1.0
            self.fired = "t2" if a >= b else "spe"
            return True
        return False

    def _reset(self) -> None:
        # The pair resets together: one change, one detection, then afresh.
        self.t2._reset()
        self.spe._reset()
        self.t2._drift_detected = self.spe._drift_detected = False

    def _to_state(self) -> PCADetectorState:
        return PCADetectorState(
            reference=self.reference.state_model(),
            t2=self.t2.state_model(),
            spe=self.spe.state_model(),
            fired=self.fired,
        )

    @classmethod
    def _from_state(cls, state: PCADetectorState) -> Self:
        obj = cls(
            PCAReference.from_model(state.reference),
            Cusum.from_model(state.t2),
            Cusum.from_model(state.spe),
        )
        obj.fired = state.fired
        return obj

    @classmethod
    def calibrated(
        cls,
        vectors: np.ndarray,
        ert: float,
        *,
        k: int = 8,
        normalize: bool = True,
        cusum_k: float = 0.5,
        seed: int = 0,
    ) -> Self:
        """Fit the reference on ``vectors`` and calibrate both CUSUMs to ``ert`` together.

        In-sample scores are optimistic (the basis was fitted to those very
        vectors, so their SPE is too small), which would give thresholds
        that fire on every new frame. The CUSUMs are therefore calibrated on
        *cross-fitted* scores: a basis fitted on the first half scores the
        second half and vice versa (time order kept, so the scores keep
        their autocorrelation). Each CUSUM gets ``2 x ert``
        (``split_budget``).
        """
        x = np.asarray(vectors, dtype=float)
        if x.ndim != 2 or x.shape[0] < 20:
            raise ValueError(f"need at least 20 reference embeddings, got shape {x.shape}")
        half = x.shape[0] // 2
        first, second = x[:half], x[half:]
        a = PCAReference.fit(first, k, normalize=normalize).scores_many(second)
        b = PCAReference.fit(second, k, normalize=normalize).scores_many(first)
        cross = log_scores(np.concatenate([b, a]))
        per = split_budget(ert, 2)
        t2 = Cusum.calibrated(cross[:, 0], per, k=cusum_k, seed=seed)
        spe = Cusum.calibrated(cross[:, 1], per, k=cusum_k, seed=seed + 1)
        return cls(PCAReference.fit(x, k, normalize=normalize), t2, spe)
