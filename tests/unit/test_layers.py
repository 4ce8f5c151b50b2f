"""The import graph: one direction of layers, no cycles, no Kafka below the runtime.

Read from the source (``ast``), every import counted, including those inside
functions (the CLI defers heavy imports for start-up time; a deferred import
that closes a cycle is still a cycle). The layers are documented in
``docs/architecture.md``; a module that is in no layer fails here, so a new
module has to be placed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("driftline", "schemas", "processors", "producers", "sinks")

# Bottom to top; a module may import its own layer and the layers below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("driftline.errors", "driftline.settings", "driftline")),
    ("wire", ("schemas",)),
    ("core", (
        "processors.calibration", "processors.detectors", "processors.learners",
        "processors.detector_registry", "processors.signal_tracker",
        "processors.class_novelty", "processors.embedding_reference",
        "processors.embedding_learners", "processors.image_decode", "processors.image_quality",
        "processors.top_scores", "processors.embedder", "processors.model_manifest",
        "processors.frame_pipeline", "processors.quantization", "processors.models",
        "processors",
    )),
    ("monitor", ("processors.monitor",)),
    ("routing", (
        "processors.bundles", "processors.commands", "processors.router", "processors.replay",
        "processors.bundle_export",
    )),
    ("runtime", (
        "processors.stream_app", "processors.stream_metrics", "processors.worker_shutdown",
        "processors.calibration_pool",
        "processors.topic_reader", "processors.snapshot_order",
        "processors.emitted_alerts", "processors.emitted_dead_letters", "producers", "sinks",
        "driftline.local_infra",
        "driftline.kafka_config", "driftline.metrics", "driftline.service_log",
    )),
    ("app", ("driftline.cli", "driftline.cli_api", "driftline.cli_controls",
             "driftline.cli_publish", "driftline.api", "driftline.demo", "driftline.demo_replay",
             "driftline.__main__")),
]
# Libraries that talk to the outside world: only the runtime and the app use them.
IO_LIBRARIES = ("confluent_kafka", "faust", "aiokafka", "redis", "httpx", "prometheus_client")
RUNTIME = [name for name, _ in LAYERS].index("runtime")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[_module_name(path)] = path
    return out


MODULES = _modules()


def layer_of(module: str) -> int:
    """Index of the layer holding ``module``: its longest matching prefix wins."""
    best, best_len = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    return best


def imports_of(module: str) -> set[str]:
    """Every module ``module`` imports (project modules resolved, others by top name)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in MODULES else base)
    return found


GRAPH = {m: {i for i in imports_of(m) if i in MODULES and i != m} for m in MODULES}


def test_every_module_has_a_layer():
    assert [m for m in MODULES if layer_of(m) < 0] == []


def test_imports_point_down_the_layers():
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {i} ({LAYERS[layer_of(i)][0]})"
        for m, deps in GRAPH.items() for i in sorted(deps) if layer_of(i) > layer_of(m)
    ]
    assert upward == []


def test_the_import_graph_has_no_cycle():
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(GRAPH[m]):
            if state.get(d) == 1:
                # A package's __init__ importing its own submodules is not a cycle
                # unless a submodule imports the package back.
                cycles.append([*stack[stack.index(d):], d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)
    assert cycles == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) < RUNTIME))
def test_no_io_library_below_the_runtime(module):
    used = {i.split(".")[0] for i in imports_of(module)}
    assert sorted(used & set(IO_LIBRARIES)) == []
