"""A stream's embedding reference: mean direction and a PCA basis.

Each embedding is reduced to two scalars that detectors can watch at
O(d·k) cost per event and O(d·k) memory:

- ``distance``: cosine distance to the reference mean (what the scene looks
  like overall has moved);
- ``residual``: squared reconstruction error outside the top-k reference
  components, relative to the vector's norm (something *new* appeared that
  the reference never varied along).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref = rng.normal(size=(100, 16)) + 5.0
>>> r = EmbeddingReference.fit(ref, k=4)
>>> near = r.scores(ref[0])
>>> far = r.scores(-ref[0])
>>> far["distance"] > near["distance"]
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Self

import numpy as np
from pydantic import model_validator

from processors.detectors.pca import PCAReference, l2_normalise
from processors.detectors.state import Checkpointable, Packed, StateModel


class EmbeddingReferenceState(StateModel):
    """Checkpoint of an ``EmbeddingReference``: little-endian float64 bytes, base64 (exact)."""

    type: Literal["embedding_reference"] = "embedding_reference"
    version: Literal[1] = 1
    dim: int
    k: int
    mean: Packed
    basis: Packed

    @model_validator(mode="after")
    def _shapes(self) -> Self:
        self._check_size("mean", (self.dim,))
        self._check_size("basis", (self.k, self.dim))
        return self


@dataclass(frozen=True)
class EmbeddingReference(Checkpointable[EmbeddingReferenceState]):
    """Mean, unit mean direction and an orthonormal PCA basis (k × d)."""

    State = EmbeddingReferenceState

    mean: np.ndarray
    basis: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def fit(cls, vectors: np.ndarray, k: int) -> EmbeddingReference:
        """Fit on reference embeddings (n × d, n >= 3); ``k`` is capped by n − 1 and d.

        The PCA of the L2-normalised embeddings: ``PCAReference.fit``'s mean
        and basis (the same fit ``PCADetector`` scores against).
        """
        pca = PCAReference.fit(vectors, k, normalize=True)
        return cls(mean=pca.mean, basis=pca.basis)

    def scores(self, vector: np.ndarray | list[float]) -> dict[str, float]:
        """Scalar drift scores of one embedding."""
        return self.scores_and_projection(vector)[0]

    def scores_and_projection(
        self, vector: np.ndarray | list[float]
    ) -> tuple[dict[str, float], np.ndarray]:
        """``scores`` and ``project`` of one embedding, normalised and projected once."""
        v = np.asarray(vector, dtype=np.float64)
        v = v / max(float(np.linalg.norm(v)), 1e-12)
        mean_norm = max(float(np.linalg.norm(self.mean)), 1e-12)
        distance = 1.0 - float(v @ self.mean) / mean_norm
        centred = v - self.mean
        proj = self.basis @ centred
        residual = float(centred @ centred - proj @ proj)
        return {"distance": distance, "residual": max(residual, 0.0)}, proj

    def project(self, vector: np.ndarray | list[float]) -> np.ndarray:
        """The ``k`` coordinates of one embedding on the reference basis, O(d·k).

        The vector is L2-normalised and centred on the reference mean first,
        exactly as in ``fit`` and ``scores``, so the reference's own
        projections have mean 0 and are uncorrelated across components.

        Examples
        --------
        >>> rng = np.random.default_rng(1)
        >>> ref = rng.normal(size=(50, 6)) + 2.0
        >>> r = EmbeddingReference.fit(ref, k=3)
        >>> r.project(ref[0]).shape
        (3,)
        >>> bool(np.allclose(r.project_many(ref).mean(axis=0), 0.0))
        True
        """
        v = np.asarray(vector, dtype=np.float64)
        if v.shape != (self.dim,):
            raise ValueError(f"expected a vector of {self.dim} floats, got shape {v.shape}")
        v = v / max(float(np.linalg.norm(v)), 1e-12)
        return self.basis @ (v - self.mean)

    def project_many(self, vectors: np.ndarray) -> np.ndarray:
        """``project`` of every row of an ``(n, d)`` array: an ``(n, k)`` array."""
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected an (n, {self.dim}) array, got shape {x.shape}")
        return (l2_normalise(x) - self.mean) @ self.basis.T

    def _to_state(self) -> EmbeddingReferenceState:
        return EmbeddingReferenceState(
            dim=self.dim, k=int(self.basis.shape[0]), mean=self.mean, basis=self.basis
        )

    @classmethod
    def _from_state(cls, state: EmbeddingReferenceState) -> Self:
        return cls(mean=state.mean, basis=state.basis)
