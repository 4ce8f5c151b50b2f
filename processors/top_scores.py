"""A classifier's few highest class probabilities, as events carry them in ``scores``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from processors.embedder import EmbedResult


TOP_K = 5


def top_scores(preds: EmbedResult, j: int, names: list[str] | None,
               k: int = TOP_K) -> dict[str, float] | None:
    """The ``k`` highest class probabilities of row ``j`` (what a deployed classifier reports).

    The reported top class keeps the row's confidence (under ``class_mix``
    drift it is a class the probabilities never saw), so ``scores`` and
    ``top_class``/``confidence`` agree.
    """
    if preds.probs is None or names is None or preds.top_class is None or preds.confidence is None:
        return None
    p = np.asarray(preds.probs[j], dtype=np.float64)
    order = np.argsort(-p)[:k]
    top = preds.top_class[j]
    out = {top: float(np.clip(preds.confidence[j], 0.0, 1.0))}
    # order[0] is the model's own top class: ``top`` already stands for it.
    for i in order[1:]:
        name = names[int(i)]
        if name not in out:
            out[name] = float(p[i])
    return out

