"""The checkpoint contract, checked generically (in the spirit of river's ``check_estimator``).

Every checkpointable object -- detectors, learners, signals -- promises:

1. ``state()`` is strict JSON (``json.dumps(..., allow_nan=False)`` works);
2. ``from_state(json.loads(json.dumps(state())))`` rebuilds an object whose
   ``state()`` is the same and which, fed the same further inputs, behaves
   bit for bit like the original (at any point: fresh, mid-stream, right at
   a detection whose reset is still pending);
3. a checkpoint of another type, another version, with an unknown field or
   a malformed field is refused with ``StateVersionError`` naming it;
4. ``state()`` does not grow with the number of updates.

The functions below check one promise each for any object, given how to
build it, what to feed it and what to observe; ``tests/unit/detectors/
test_detector_contract.py`` runs them over every registered detector kind and
``tests/unit/learners/test_state_contract.py`` over the learners and the
per-stream components. They raise ``AssertionError`` with what broke.

Examples
--------
>>> from processors.detectors import Cusum
>>> xs = [0.0] * 20 + [3.0] * 20
>>> step = lambda det, x: (det.update(x), det.drift_detected, det.statistic)[1:]
>>> full = check_roundtrip(lambda: Cusum(h=4.0), xs, step, Cusum.from_state, cuts=[0, 22])
>>> sum(d for d, _ in full)
10
>>> check_refuses(Cusum.from_state, Cusum().state(), foreign=[])
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from processors.detectors.state import StateVersionError

__all__ = ["check_bounded", "check_refuses", "check_roundtrip", "strict_json"]


class _HasState(Protocol):
    def state(self) -> dict[str, Any]: ...


T = TypeVar("T", bound=_HasState)


def _expect(ok: bool, message: str) -> None:
    if not ok:
        raise AssertionError(message)


def strict_json(state: Mapping[str, Any]) -> str:
    """``state`` as strict JSON; ``AssertionError`` if it holds NaN/inf or non-JSON values."""
    try:
        return json.dumps(state, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"state is not strict JSON: {exc}") from None


def check_roundtrip(
    make: Callable[[], T],
    inputs: Sequence[Any],
    step: Callable[[T, Any], Any],
    load: Callable[[dict[str, Any]], T],
    *,
    cuts: Iterable[int],
) -> list[Any]:
    """Promises 1 and 2 at every cut; returns the uninterrupted trace.

    ``make()`` builds the object afresh (deterministically); ``step(obj, x)``
    feeds one input and returns what is observable afterwards (compare floats
    exactly: ``repr`` them if they may be ``nan``); ``load`` is ``from_state``.
    """
    reference = make()
    full = [step(reference, x) for x in inputs]
    for cut in cuts:
        obj = make()
        for x in inputs[:cut]:
            step(obj, x)
        state = obj.state()
        restored = load(json.loads(strict_json(state)))
        _expect(restored.state() == state, f"state() of the object restored at {cut} differs")
        rest = [step(restored, x) for x in inputs[cut:]]
        for i, (a, b) in enumerate(zip(rest, full[cut:], strict=True)):
            _expect(a == b, f"restored at {cut}, diverged at input {cut + i}: {a!r} != {b!r}")
        _expect(restored.state() == reference.state(),
                f"restored at {cut}, the final state differs from the uninterrupted one")
    return full


def check_refuses(
    load: Callable[[dict[str, Any]], Any],
    state: Mapping[str, Any],
    *,
    foreign: Iterable[Mapping[str, Any]],
) -> None:
    """Promise 3: ``load`` refuses ``foreign`` states and every corruption of ``state``.

    Corruptions: the version + 1, an unknown type, an unknown field, and each
    field in turn replaced by a value of no field type (``[[]]``); the error
    must be a ``StateVersionError`` naming the field.
    """

    def refused(bad: Mapping[str, Any], what: str, named: str | None = None) -> None:
        try:
            load(copy.deepcopy(dict(bad)))
        except StateVersionError as exc:
            _expect(named is None or named in str(exc),
                    f"{what}: the error does not name {named!r}: {exc}")
        else:
            raise AssertionError(f"{what} was accepted")

    refused({**state, "version": int(state["version"]) + 1}, "a newer version", "version")
    refused({**state, "type": "no_such_type"}, "an unknown type", "no_such_type")
    refused({**state, "no_such_field": 1}, "an unknown field", "no_such_field")
    for key in state:
        if key not in ("type", "version"):
            refused({**state, key: [[]]}, f"a malformed {key!r}", key)
    for other in foreign:
        refused(other, f"a {other.get('type')!r} state")


def check_bounded(
    make: Callable[[], T],
    inputs: Sequence[Any],
    step: Callable[[T, Any], Any],
    *,
    at: tuple[int, int],
    slack: float = 0.1,
) -> tuple[int, int]:
    """Promise 4: the JSON size after ``at[1]`` inputs is within ``slack`` of that after ``at[0]``.

    Returns both sizes. (Counters gain digits; a window fills up before ``at[0]``.)
    """
    obj = make()
    sizes = []
    for i, x in enumerate(inputs[: at[1]], start=1):
        step(obj, x)
        if i in at:
            sizes.append(len(strict_json(obj.state())))
    small, large = sizes
    _expect(large <= small * (1 + slack),
            f"state grew from {small} to {large} bytes between {at[0]} and {at[1]} inputs")
    return small, large
