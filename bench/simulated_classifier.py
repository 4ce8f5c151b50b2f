"""A seeded stand-in for a deployed classifier watching a camera: its outputs at 10 frames/s.

What a camera's classifier says frame after frame, without a model: a class
mix that wanders slowly (the log-shares follow a mean-reverting process with a
10-minute correlation time, standard deviation ``MIX_WANDER``: traffic changing
over the day), classes that persist over neighbouring frames (the top class is
kept with probability ``STICK``: an object stays in view ~0.7 s), and a top-1
confidence from a logistic of a per-class level, a slow shared swing
(lighting; correlation time 5 s) and per-frame noise. The rest of the mass is
spread over the other classes; events carry the top five scores, as the
worker's Prediction events do.

Shifts from ``onset`` (every random draw is the same as the clean stream's, so
the frames before the onset are identical):

- ``class_mix``: one class's share triples (the fourth most common, renormalised:
  ``3s / (1 + 2s)``; ``size`` sets another factor);
- ``new_classes``: half the class draws go to three classes the camera never
  showed (``NEW``), as ``driftline simulate``'s ``class_mix`` drift does;
- ``confidence_drop``: the top-1 logit drops by 0.6 (mass moves from the top
  class to the others: lower confidence, higher entropy; about -0.1 in mean
  confidence), ``confidence_drop_strong`` by 1.5 (about -0.25); ``size`` sets another
  logit drop.

>>> out = classifier_outputs(seed=1, n=3000)
>>> out["top"].shape, out["scores"].shape, bool(0.5 < out["confidence"].mean() < 0.95)
((3000,), (3000, 15), True)
>>> drop = classifier_outputs(seed=1, n=3000, shift="confidence_drop", onset=2000)
>>> bool((drop["confidence"][:2000] == out["confidence"][:2000]).all())
True
>>> bool(drop["confidence"][2000:].mean() < out["confidence"][2000:].mean() - 0.05)
True
"""

from __future__ import annotations

import numpy as np

SEEN = ("car", "person", "bus", "bicycle", "truck", "dog", "motorcycle", "van",
        "traffic_light", "bird", "umbrella", "backpack")
NEW = ("horse", "skateboard", "suitcase")
CLASSES = SEEN + NEW
K = len(CLASSES)
STICK = 0.85
MIX_WANDER = 0.2
MIX_TAU = 6000.0  # frames: 10 minutes at 10 frames/s
SWING_TAU = 50.0  # frames: 5 s
CONF_DROP = {"confidence_drop": 0.6, "confidence_drop_strong": 1.5}
SHIFTS = ("class_mix", "new_classes", "confidence_drop", "confidence_drop_strong")
TOP = 5


def base_mix(seed: int) -> np.ndarray:
    """The camera's class shares (a seeded Dirichlet draw over ``SEEN``; ``NEW`` get none)."""
    seen = np.random.default_rng([seed, 0]).dirichlet(np.full(len(SEEN), 1.0))
    return np.concatenate([seen, np.zeros(len(NEW))])


def tripled(mix: np.ndarray, factor: float = 3.0) -> tuple[np.ndarray, int]:
    """``mix`` with its fourth most common class's share times ``factor``, renormalised; that class.

    >>> mix, c = tripled(np.array([0.4, 0.3, 0.2, 0.1]), 2.0)
    >>> c, mix.round(3).tolist()
    (3, [0.364, 0.273, 0.182, 0.182])
    """
    c = int(np.argsort(mix)[::-1][3])
    out = mix.copy()
    out[c] *= factor
    return out / out.sum(), c


def _ar(rng: np.random.Generator, n: int, tau: float, shape: tuple[int, ...] = ()) -> np.ndarray:
    """A unit-variance AR(1) path of length ``n`` with correlation time ``tau`` frames."""
    a = np.exp(-1.0 / tau)
    eps = rng.normal(size=(n, *shape)) * np.sqrt(1 - a * a)
    out = np.empty((n, *shape))
    z = rng.normal(size=shape)
    for i in range(n):
        z = a * z + eps[i]
        out[i] = z
    return out


def classifier_outputs(seed: int, n: int, shift: str | None = None, onset: int = 0,
                       size: float | None = None) -> dict[str, np.ndarray]:
    """Top class index, top-1 confidence and full (n, K) scores of ``n`` frames.

    ``size``: the ``class_mix`` factor (default 3) or the confidence drops'
    logit drop (default ``CONF_DROP``); the draws do not depend on it.
    """
    if shift not in (None, *SHIFTS):
        raise ValueError(f"unknown shift {shift!r}; one of {SHIFTS}")
    mix0 = base_mix(seed)
    rng = np.random.default_rng([seed, 1])
    wander = MIX_WANDER * _ar(rng, n, MIX_TAU, (K,))
    swing = 0.3 * _ar(rng, n, SWING_TAU)
    keep = rng.random(n)
    pick = rng.random(n)
    noise = 0.5 * rng.normal(size=n)
    rest = rng.dirichlet(np.full(K - 1, 2.0), size=n)
    level = 1.6 + 0.3 * rng.normal(size=K)
    mix1 = tripled(mix0, 3.0 if size is None else size)[0] if shift == "class_mix" else mix0
    if shift == "new_classes":
        mix1 = np.concatenate([mix0[: len(SEEN)], np.zeros(len(NEW))]) / 2
        mix1[len(SEEN):] = 0.5 / len(NEW)
    top = np.empty(n, dtype=int)
    cls = int(np.searchsorted(np.cumsum(mix0), pick[0]))
    for i in range(n):
        if i == 0 or keep[i] >= STICK:
            w = (mix1 if i >= onset else mix0) * np.exp(wander[i])
            cls = min(int(np.searchsorted(np.cumsum(w / w.sum()), pick[i])), K - 1)
        top[i] = cls
    logit = level[top] + swing + noise
    if shift in CONF_DROP:
        logit[onset:] -= CONF_DROP[shift] if size is None else size
    conf = np.clip(1.0 / (1.0 + np.exp(-logit)), 0.35, 0.999)
    others = np.minimum(rest * (1.0 - conf)[:, None], 0.99 * conf[:, None])
    scores = np.empty((n, K))
    for i in range(n):
        scores[i] = np.insert(others[i], top[i], conf[i])
    return {"top": top, "confidence": conf, "scores": scores}


def top_scores(scores: np.ndarray) -> dict[str, float]:
    """The ``TOP`` highest of one frame's scores, by class name (what a Prediction carries).

    >>> top_scores(np.array([0.1, 0.7, 0.2] + [0.0] * (K - 3)))
    {'person': 0.7, 'bus': 0.2, 'car': 0.1, 'bicycle': 0.0, 'truck': 0.0}
    """
    idx = np.argsort(-scores, kind="stable")[:TOP]
    return {CLASSES[j]: float(scores[j]) for j in idx}
