"""Start-up cost: imports of the worker, ``driftline --help``, a worker's time to its ready line.

Each ``--tree`` is a copy of the code (a checkout, or ``git archive REV | tar
-x -C DIR``), run with ``PYTHONPATH=TREE`` so its modules win over the
editable install. The trees are measured interleaved, round after round, so
a busy shared machine slows them alike: compare the ratios in one run, not
numbers across runs. Per round and tree:

- ``import processors.stream_app``: cumulative import time of that module
  from ``python -X importtime`` (what a worker imports before its start);
- ``import processors.monitor``: the same for the monitor package (imported
  by the CLI's signal check, the API and the sinks);
- ``driftline --help``: wall time of the console script;
- with ``--worker-rounds``: a real ``driftline worker`` against a private Tansu
  broker (fresh topics and consumer group each time, as a cold start): wall
  time from spawn to its ``worker ready`` line, and -- for a tree that warms
  the monitors' libraries in its embed thread (``processors.warm_imports``) --
  how long they took, and when that log line appeared relative to the ready
  line (negative: before it, i.e. during the group join).

Command (about 2 minutes; 6 worker starts with the defaults):

    git archive BASE_REV | (mkdir -p /tmp/before && tar -x -C /tmp/before)
    python bench/bench_startup.py --tree /tmp/before --tree . --rounds 5 --worker-rounds 3
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driftline.local_infra import LocalBroker, ensure_topics, settings_env
from driftline.settings import Settings

READY = " ready: consuming"
IMPORTED = re.compile(r"monitors' libraries imported in ([0-9.]+) s")


def _env(tree: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    return {**(base if base is not None else os.environ), "PYTHONPATH": str(tree)}


def import_us(tree: Path, module: str) -> float:
    """Cumulative ``-X importtime`` of ``module`` in a fresh interpreter, in seconds."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                         env=_env(tree), cwd=tree, capture_output=True, text=True, check=True)
    line = next(ln for ln in reversed(out.stderr.splitlines())
                if ln.rstrip().endswith(f"| {module}"))
    return int(line.split("|")[1]) / 1e6


def help_s(tree: Path) -> float:
    """Wall time of ``driftline --help`` (the console script)."""
    started = time.perf_counter()
    subprocess.run(["driftline", "--help"], env=_env(tree), cwd=tree, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def worker_ready(tree: Path, bootstrap: str, tmp: Path) -> tuple[float, float | None, float | None]:
    """(spawn to ready line, s; imports line after the ready line, s; imports took, s)."""
    prefix = f"startup-{uuid.uuid4().hex[:8]}"
    settings = Settings(bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=2,
                        consumer_group=f"{prefix}.g", data_dir=tmp / prefix)
    ensure_topics(bootstrap, settings.topics, settings.partitions)
    log = tmp / f"{prefix}.log"
    with log.open("wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "driftline", "worker", "--loglevel", "info"],
                                env=_env(tree, settings_env(settings)), cwd=tree,
                                stdout=out, stderr=subprocess.STDOUT)
    ready = imported = took = None
    try:
        while time.monotonic() - started < 120:
            text = log.read_text(errors="replace")
            now = time.monotonic()
            if ready is None and READY in text:
                ready = now
            if imported is None and (m := IMPORTED.search(text)):
                imported, took = now, float(m.group(1))
            # A tree without the warm-up never logs it: 10 s after ready is enough.
            if ready is not None and (imported is not None or now - ready > 10):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited {proc.returncode}: {text[-2000:]}")
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if ready is None:
        raise RuntimeError(f"no ready line: {log.read_text(errors='replace')[-2000:]}")
    return (ready - started, None if imported is None else imported - ready, took)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", type=Path, action="append", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--worker-rounds", type=int, default=3)
    args = ap.parse_args()
    trees = [t.resolve() for t in args.tree]
    rows: dict[Path, dict[str, list[float]]] = {t: {} for t in trees}

    def add(tree: Path, key: str, value: float | None) -> None:
        if value is not None:
            rows[tree].setdefault(key, []).append(value)

    for r in range(args.rounds):
        for tree in trees:
            add(tree, "import processors.stream_app (s)", import_us(tree, "processors.stream_app"))
            add(tree, "import processors.monitor (s)", import_us(tree, "processors.monitor"))
            add(tree, "driftline --help (s)", help_s(tree))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    if args.worker_rounds:
        with tempfile.TemporaryDirectory() as d, LocalBroker(log_dir=Path(d)) as broker:
            for r in range(args.worker_rounds):
                for tree in trees:
                    ready, after, took = worker_ready(tree, broker.bootstrap, Path(d))
                    add(tree, "worker: spawn to ready line (s)", ready)
                    add(tree, "worker: warm-up imports took (s)", took)
                    # Negative: done before the ready line.
                    add(tree, "worker: warm-up imports done, after ready (s)", after)
                print(f"worker round {r + 1}/{args.worker_rounds} done", file=sys.stderr)

    load = os.getloadavg()
    print(f"# {len(trees)} trees interleaved, {args.rounds} rounds ({args.worker_rounds} worker "
          f"rounds); load average {load[0]:.1f} at the end; median [min-max]")
    keys = list(dict.fromkeys(k for t in trees for k in rows[t]))
    print("| measure | " + " | ".join(t.name or str(t) for t in trees) + " |")
    print("|---|" + "---:|" * len(trees))
    for key in keys:
        cells = []
        for t in trees:
            v = rows[t].get(key)
            cells.append(f"{statistics.median(v):.2f} [{min(v):.2f}-{max(v):.2f}]" if v else "—")
        print(f"| {key} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
