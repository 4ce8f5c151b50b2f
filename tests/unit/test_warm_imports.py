"""river, scipy and scikit-learn are imported where used, and the worker warms them up first.

Importing ``processors.monitor`` used to import river's drift detectors and
learners and scipy's submodules (~2 s, scikit-learn included through
``river.drift.datasets``): every CLI signal check, the API, the sinks and the
worker's start paid it. Now they are imported inside the functions that use
them (``processors/warm_imports.py``), and the worker imports the ones its
event loop would need in its embed thread before it applies an event.

Each import check runs in a fresh interpreter (``sys.modules`` of this test
process holds whatever other tests imported). What the checks pin:

- the entry points' imports load none of the heavy libraries;
- every import of them deferred into a function names a module the worker
  warms up (``MONITOR`` or ``CALIBRATION``), and none is left at module level
  (read from the source, as ``test_layers`` reads the import graph);
- after ``warm(worker_modules(n))`` a worker's monitors import none of them
  any more, through a PCA warm-up, labels, calibrations (inline with 0
  calibration workers; in a pool child with 1) and a checkpoint round trip.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from processors.warm_imports import CALIBRATION, MONITOR

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("river", "scipy", "sklearn")
# Cheap and needed at import: the version stamp of checkpoints.
LIGHT = {"river", "river.__version__"}

# Modules that start a process or answer an operator: the worker, the CLI, the
# API, the sinks, replay (and through them processors.monitor).
ENTRY_POINTS = (
    "processors.stream_app",
    "processors.monitor",
    "processors.replay",
    "driftline.cli",
    "driftline.api.app",
    "sinks.runner",
)

HEAVY_LOADED = """
import json, sys
print(json.dumps(sorted(n for n in sys.modules
                        if n.split(".")[0] in {heavy!r} and n not in {light!r})))
"""


# This worktree's code, whatever the editable install points at.
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _run(args: list[str], *, timeout: float = 120.0) -> str:
    """The last line ``python ARGS`` printed (a fresh interpreter: its own sys.modules)."""
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                         timeout=timeout, cwd=ROOT, env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_an_entry_point_imports_no_heavy_library(module: str) -> None:
    code = f"import {module}\n" + HEAVY_LOADED.format(heavy=set(HEAVY), light=LIGHT)
    loaded = json.loads(_run(["-c", code]))
    assert loaded == [], f"{module} imports them again (see warm_imports.py): {loaded[:10]}"


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """(module, at module level, line) of every heavy import in ``path``.

    Imports under ``if TYPE_CHECKING:`` are for mypy and never run.
    """
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(n) for child in node.body for n in ast.walk(child)}
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # ``from scipy import special, stats`` imports the submodules
            # scipy.special and scipy.stats; ``from x.y import f`` imports x.y.
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = subs if node.module in HEAVY else [node.module]
        out += [(n, id(node) in top, node.lineno) for n in names
                if n.split(".")[0] in HEAVY and n not in LIGHT]
    return out


def test_every_deferred_import_is_warmed_and_none_is_left_at_module_level() -> None:
    warmed = set(MONITOR + CALIBRATION)
    found = {}
    for path in sorted((ROOT / "processors").rglob("*.py")):
        for name, top, line in _imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            assert not top, f"{where}: {name} at module level (import it where it is used)"
            assert name in warmed, f"{where}: {name} is not in warm_imports.MONITOR/CALIBRATION"
            found[name] = where
    # Each warmed module is imported somewhere (a stale entry would only cost
    # start-up time, but says the list no longer describes the code).
    assert set(found) == warmed, sorted(warmed - set(found))


MONITOR_RUN = """
import json, sys
from datetime import UTC, datetime, timedelta
import numpy as np
from driftline.settings import MonitorSettings
from processors.calibration_pool import CalibrationPool, Calibrations
from processors.monitor import QUALITY_METRICS, MonitorRegistry, StreamMonitor
from processors.warm_imports import warm, worker_modules
from schemas.events import Embedding, Label, Prediction

def heavy():
    return {{n for n in sys.modules if n.split(".")[0] in ("river", "scipy", "sklearn")}}

def main(workers):
    warm(worker_modules(workers))
    before = heavy()
    settings = MonitorSettings(reference_size=60, class_mix_reference_size=60, cooldown=50,
                               embedding_dim=16)
    registry = MonitorRegistry(settings, deferred=workers > 0)
    calibrations = Calibrations(CalibrationPool(workers) if workers else None)
    rng = np.random.default_rng(0)
    base = rng.normal(size=16) + 3.0
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(160):
        quality = {{m: 50.0 + 5.0 * rng.normal() for m in QUALITY_METRICS}}
        top = "car" if rng.random() < 0.7 else "bus"
        events = [
            Embedding(event_id=f"e{{i}}", stream_id="cam", model_version="v1",
                      frame_id=f"f{{i}}", frame_index=i, quality=quality,
                      vector=(base + 0.3 * rng.normal(size=16)).tolist()),
            Prediction(event_id=f"p{{i}}", stream_id="cam", model_version="v1",
                       frame_id=f"f{{i}}", frame_index=i, ts=t0 + timedelta(seconds=i / 10),
                       top_class=top,
                       confidence=0.8, scores={{top: 0.8, "other": 0.2}}),
            Label(event_id=f"l{{i}}", stream_id="cam", model_version="v1",
                  target_event_id=f"p{{i}}", true_class="car"),
        ]
        for event in events:
            # The worker's order: results installed before the stream's next event.
            calibrations.settle_now("cam")
            registry.observe(event)
            calibrations.submit([registry.get("cam", "v1")])
    calibrations.settle_now("cam")
    calibrations.close()
    monitor = registry.get("cam", "v1")
    learners = monitor.learners["embedding"]
    assert learners.head.n_labels > 0, "the learners were built and trained"
    for name in ("embedding.distance", "quality.undecodable", "performance.error",
                 "output.class_mix"):
        assert monitor.signals[name].detector is not None, name
    StreamMonitor.from_state(json.loads(monitor.snapshot().model_dump_json())["monitor"])
    print(json.dumps(sorted(heavy() - before)))

if __name__ == "__main__":
    main({workers})
"""


@pytest.mark.parametrize("workers", [0, 1], ids=["inline", "pool"])
def test_after_the_warm_up_a_worker_monitor_imports_nothing_heavy(
    workers: int, tmp_path: Path
) -> None:
    # A file, not -c: the pool's spawned child imports the parent's main module.
    script = tmp_path / "monitor_run.py"
    script.write_text(textwrap.dedent(MONITOR_RUN.format(workers=workers)))
    late = json.loads(_run([str(script)], timeout=300))
    packages = sorted({".".join(n.split(".")[:2]) for n in late})
    assert late == [], f"imported on the event loop after the warm-up: {packages}"
