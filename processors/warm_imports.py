"""The heavy libraries the monitors import where they use them, and their warm-up.

river's learners and drift detectors and scipy's submodules cost ~2 s to
import on the 2-core build machine, scikit-learn included (``river.drift``
imports its own ``datasets``, which import ``river.stream`` and scikit-learn;
``river.anomaly``, ``river.linear_model`` and ``river.preprocessing`` do too).
Imported with their modules they made every importer of ``processors.monitor``
pay: the CLI checking a signal name, the API, the sinks, and the worker before
it could join its group. So the modules that use them import them inside the
function that needs them (``processors.detectors.adwin``, ``.ddm``,
``.page_hinkley``, ``.windowed``, ``.mmd``, ``processors.calibration.ar``,
``.surrogates``, ``processors.learners.*``), and importing ``processors.monitor``
or ``processors.stream_app`` loads none of them
(``tests/unit/test_warm_imports.py`` fails if one comes back).

The failure mode that trades for: a lazy import on the worker's event loop.
A stream's first PCA warm-up builds its river learners (``river.anomaly``, with
everything above: a ~2 s stall of every stream in the middle of processing), a
restored snapshot builds river's ADWIN, and with
``DRIFTLINE_CALIBRATION_WORKERS=0`` a calibration runs scipy's filters inline.
So the worker imports what its settings will need (``worker_modules``) in its
embed thread while faust starts and joins the group (``warm``, submitted by
``processors.stream_app.build_app``), and applies no event and installs no
snapshot before that is done: the event loop never imports them, nor races
the thread for their import locks. With calibration workers (the default) the
scipy modules of calibration are the children's (``CALIBRATION``): the worker
imports them only if a child fails and a calibration falls back inline.

Examples
--------
>>> worker_modules(0) == MONITOR + CALIBRATION, worker_modules(2) == MONITOR
(True, True)
>>> warm(["json"]) >= 0.0
True
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterable

# Imported by the monitors themselves, on the worker's event loop: river's ADWIN
# (quality.undecodable, performance.error, restored from snapshots and from the
# calibration pool's results), the outlier scorer's LODA and the retrain head's
# pipeline and McNemar test (built at a stream's PCA warm-up).
MONITOR: tuple[str, ...] = (
    "river.drift",
    "river.stats",
    "river.anomaly",
    "river.compose",
    "river.linear_model",
    "river.preprocessing",
    "scipy.stats",
)
# Imported by a calibration (inline, or in a calibration pool's child): the AR fit
# and filters, the windowed tests' normal scores, the MMD bandwidth.
CALIBRATION: tuple[str, ...] = (
    "scipy.linalg",
    "scipy.signal",
    "scipy.special",
    "scipy.spatial.distance",
)


def worker_modules(calibration_workers: int) -> tuple[str, ...]:
    """What a worker's event loop would import lazily, with ``calibration_workers`` children."""
    return MONITOR + (CALIBRATION if calibration_workers == 0 else ())


def warm(modules: Iterable[str]) -> float:
    """Import ``modules`` (in this thread); the seconds it took.

    An ``ImportError`` (a broken install) is raised: the worker stops, as it
    did when these were imported with its modules.
    """
    started = time.perf_counter()
    for name in modules:
        importlib.import_module(name)
    return time.perf_counter() - started
