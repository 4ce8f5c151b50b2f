"""The monitor's memory: signals whose value depends on what the stream showed before.

Stateless signals are read straight off an event by their catalogue
``extract`` function (``processors.monitor.catalogue``). The rest need memory,
held here, each part bounded:

- ``EmbeddingFeatures``: per embedding source (``embedding``, ``edge``), the
  warm-up vectors, then the fitted PCA basis (``EmbeddingReference``) and the
  river learners on its projections; gives ``<source>.distance``,
  ``.residual`` and ``.outlier``.
- ``ClassIds``: class names to small integers for the class-mix test, capped.
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
from processors.learners.outlier_scorer import OutlierScorer
from processors.learners.retrain_head import RetrainHead
from processors.monitor.catalogue import EMBEDDING_SOURCES
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
        self.warmup: dict[str, list[list[float]]] = {src: [] for src in EMBEDDING_SOURCES}
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
            buffered.append(vector)
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
