"""Online learners (river) for the per-stream monitor: plain objects, no Kafka.

- ``OutlierScorer``: per-frame anomaly score of embedding projections (river's
  LODA), flags single odd frames against a cross-fitted reference quantile.
- ``RetrainHead``: an incremental classifier trained on labels, compared
  prequentially with the deployed model ("would retraining help?").

Both checkpoint exactly with ``state()`` / ``from_state()`` (the river model
pickled, base64, stamped with the river version; see ``river_state.py``).
"""

from processors.learners.outlier_scorer import OutlierScorer
from processors.learners.retrain_head import RetrainHead

__all__ = ["OutlierScorer", "RetrainHead"]
