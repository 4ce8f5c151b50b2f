"""River models inside JSON checkpoints: pickle bytes, base64, river version stamp.

river's models are plain Python objects without a JSON form; ``pickle`` (the
public protocol: river's Rust ADWIN window implements it too) is the only
exact round-trip. Two failure modes are guarded here:

- a checkpoint written by another river version would unpickle into classes
  whose attributes may have changed meaning: it is refused with
  ``StateVersionError`` (the caller starts that learner afresh);
- unpickling runs whatever the bytes name. The state topic is written only
  by the monitor, but a corrupt or foreign blob must not import arbitrary
  code: the unpickler only resolves classes *defined* in ``river`` (not
  whatever a river module imported, such as ``os``) and a short list of
  standard-library containers, and no ``getattr``.

Examples
--------
>>> from river import anomaly
>>> blob = dump_model(anomaly.LODA(seed=1))
>>> sorted(blob)
['pickle', 'river_version']
>>> type(load_model(blob, "test")).__name__
'LODA'
"""

from __future__ import annotations

import base64
import io
import pickle
from typing import Any, TypeVar

import river
from river import stats

from processors.detectors.state import StateVersionError

T = TypeVar("T")

# Standard-library globals river models are made of (measured on LODA, the
# RetrainHead pipeline and ADWIN in river 0.26).
_STDLIB = {
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "float"),
    ("builtins", "int"),
    ("builtins", "str"),
    ("collections", "defaultdict"),
    ("collections", "OrderedDict"),
    ("collections", "Counter"),
    ("collections", "deque"),
    ("copyreg", "_reconstructor"),
    ("copyreg", "__newobj__"),
    ("functools", "partial"),
    ("copy", "deepcopy"),  # SoftmaxRegression's weight defaultdict factory
    ("random", "Random"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _RiverOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _STDLIB:
            return super().find_class(module, name)
        if module.startswith("river."):
            obj = super().find_class(module, name)
            # Only river's own classes: a river module's namespace also holds
            # what it imported (``os``, ``subprocess`` ...).
            if isinstance(obj, type) and obj.__module__.startswith("river."):
                return obj
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a checkpoint")


def dump_model(model: Any) -> dict[str, str]:
    """JSON-safe ``{"river_version", "pickle"}`` of a river model."""
    # Pickled once and re-pickled from its own copy: unpickling shares equal
    # strings that were separate objects in the live model (a class name and
    # the same name as a dict key), so a restored model would checkpoint to
    # other bytes than the original it continues exactly. The copy has the
    # sharing a restored model has; checkpoints compare byte for byte.
    once = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    raw = pickle.dumps(pickle.loads(once), protocol=pickle.HIGHEST_PROTOCOL)
    return {"river_version": river.__version__, "pickle": base64.b64encode(raw).decode("ascii")}


def load_model(blob: dict[str, Any], what: str) -> Any:
    """Inverse of ``dump_model``; ``StateVersionError`` on another river version or bad bytes."""
    if blob.get("river_version") != river.__version__:
        raise StateVersionError(
            f"{what} model written by river {blob.get('river_version')!r}, "
            f"this build runs river {river.__version__}"
        )
    try:
        raw = base64.b64decode(blob["pickle"], validate=True)
        return _RiverOnlyUnpickler(io.BytesIO(raw)).load()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        # Truncated or foreign bytes fail in many ways (UnpicklingError, EOFError,
        # binascii.Error, TypeError ...); inside river's Rust ADWIN window, pyo3
        # turns a panic on bad bytes into PanicException, a BaseException.
        raise StateVersionError(f"{what} does not decode: {exc}") from None


def load_as(expected: type[T], river_version: str, blob: str, what: str) -> T:
    """``load_model`` of a river object that must be an ``expected`` (``StateVersionError``)."""
    obj = load_model({"river_version": river_version, "pickle": blob}, what)
    if not isinstance(obj, expected):
        raise StateVersionError(f"{what} holds a {type(obj).__name__}, not {expected.__name__}")
    return obj


def running_mean(n: float, mean: float) -> stats.Mean:
    """A river ``stats.Mean`` holding exactly ``(n, mean)``, through its public ``update``.

    ``update(mean, w=n)`` on a fresh mean sets ``n = 0.0 + n`` and ``mean =
    0.0 + (n / n) * mean``: both exact.

    >>> m = running_mean(7.0, 0.1)
    >>> (m.n, m.get())
    (7.0, 0.1)
    """
    m = stats.Mean()
    if n:
        m.update(mean, w=n)
    return m
