"""The river online learners of one stream, on its reference PCA projections.

Two learners watch what the scalar detectors cannot:

- ``OutlierScorer`` (river LODA) scores every frame: single odd frames are
  flagged against a cross-fitted reference quantile (their event ids go into
  alerts and state), and its clipped score is the ``<source>.outlier`` signal
  that a calibrated one-sided CUSUM watches for a *sustained* rise.
- ``RetrainHead`` (river softmax regression) learns the labels as they
  arrive, predicting each before learning it; when its accuracy on the same
  labelled frames beats the deployed model's significantly (one-sided exact
  McNemar test), the monitor raises one ``performance.retrain_gain`` alert:
  a model retrained on today's frames would do better.

Labels name a prediction; the prediction names its frame; the projection of
that frame is kept in a bounded join buffer (``JOIN_WINDOW`` frames), so a
label that arrives later than that still counts for the error rate but does
not train the head.

No Kafka here: the same object runs in the worker, ``replay`` and benchmarks.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Literal, Self

import numpy as np
from pydantic import model_validator

from processors.detectors.state import Checkpointable, Packed, StateModel
from processors.embedding_reference import EmbeddingReference
from processors.learners.outlier_scorer import OutlierScorer, OutlierScorerState
from processors.learners.retrain_head import RetrainHead, RetrainHeadState

# Frames whose projections wait for their label. Simulated cameras label
# ~30 frames late; 512 k-vectors are ~40 KiB of checkpoint at k = 8.
JOIN_WINDOW = 512
OUTLIER_EXAMPLES = 8
# The outlier threshold is a reference quantile; it needs >= 5 exceedances
# in the reference, so a 200-frame reference gets 0.975 (2.5 % expected).
MIN_EXCEEDANCES = 5


@dataclass(frozen=True)
class RetrainAdvice:
    """The head beats the deployed model on recent labels."""

    head_accuracy: float
    deployed_accuracy: float
    gain: float
    p_value: float
    n_window: int
    worst_classes: dict[str, tuple[float, int]]


class EmbeddingLearnersState(StateModel):
    """Checkpoint of ``EmbeddingLearners``: both learners, the join buffer, the examples.

    The join buffer's projections are one packed float64 array (rows of the
    scorer's ``k``): ~4x smaller than JSON lists, and exact.
    """

    type: Literal["embedding_learners"] = "embedding_learners"
    version: Literal[1] = 1
    scorer: OutlierScorerState
    head: RetrainHeadState
    join_keys: list[str]
    join: Packed
    outlier_examples: list[str]
    advised: bool

    @model_validator(mode="after")
    def _join_fits(self) -> Self:
        self._check_size("join", (len(self.join_keys), len(self.scorer.center)))
        return self


class EmbeddingLearners(Checkpointable[EmbeddingLearnersState]):
    """Outlier scorer and retrain head of one embedding source of one stream.

    Build with ``EmbeddingLearners.fit(reference, vectors)`` once the
    stream's embedding reference is fitted on ``vectors``.
    """

    State = EmbeddingLearnersState

    def __init__(self, scorer: OutlierScorer, head: RetrainHead) -> None:
        self.scorer = scorer
        self.head = head
        self._join: OrderedDict[str, list[float]] = OrderedDict()
        self.outlier_examples: deque[str] = deque(maxlen=OUTLIER_EXAMPLES)
        self._advised = False

    @classmethod
    def fit(
        cls, reference: EmbeddingReference, vectors: np.ndarray, *, seed: int = 0
    ) -> EmbeddingLearners:
        proj = reference.project_many(np.asarray(vectors, dtype=np.float64))
        quantile = min(0.99, 1.0 - MIN_EXCEEDANCES / proj.shape[0])
        scorer = OutlierScorer.fit(proj, seed=seed, quantile=quantile)
        return cls(scorer, RetrainHead(k=proj.shape[1]))

    # -- observing -------------------------------------------------------------------

    def observe(self, key: str, event_id: str, projection: np.ndarray) -> float:
        """Score one frame (remembered under ``key`` for its label); the outlier signal."""
        self.scorer.update(projection)
        if self.scorer.is_outlier:
            self.outlier_examples.append(event_id)
        self._join[key] = [float(x) for x in projection]
        if len(self._join) > JOIN_WINDOW:
            self._join.popitem(last=False)
        return self.scorer.signal_value

    def learn(self, key: str | None, true_class: str, deployed_class: str) -> RetrainAdvice | None:
        """Train the head on one label; advice when retraining newly looks worth it."""
        x = self._join.pop(key, None) if key is not None else None
        if x is None:
            return None
        self.head.learn(np.asarray(x), true_class, deployed_class)
        advised = self.head.retrain_advised
        # Advise on the transition only: once per episode, not on every label
        # while the head stays ahead (an alert storm for one finding).
        fire = advised and not self._advised
        self._advised = advised
        if not fire:
            return None
        per_class = self.head.per_class_accuracy()
        worst = dict(sorted(per_class.items(), key=lambda kv: kv[1][0])[:3])
        return RetrainAdvice(
            head_accuracy=self.head.head_accuracy,
            deployed_accuracy=self.head.deployed_accuracy,
            gain=self.head.gain,
            p_value=self.head.p_value,
            n_window=self.head.n_window,
            worst_classes=worst,
        )

    # -- checkpointing -------------------------------------------------------------

    def _to_state(self) -> EmbeddingLearnersState:
        return EmbeddingLearnersState(
            scorer=self.scorer.state_model(),
            head=self.head.state_model(),
            join_keys=list(self._join),
            join=np.asarray(list(self._join.values()), dtype=np.float64).ravel(),
            outlier_examples=list(self.outlier_examples),
            advised=self._advised,
        )

    @classmethod
    def _from_state(cls, state: EmbeddingLearnersState) -> Self:
        out = cls(OutlierScorer.from_model(state.scorer), RetrainHead.from_model(state.head))
        out._join = OrderedDict(
            (k, [float(x) for x in row]) for k, row in zip(state.join_keys, state.join, strict=True)
        )
        out.outlier_examples.extend(state.outlier_examples)
        out._advised = state.advised
        return out
