"""``bench/bench_edge_cost.py``: its docstring example and the comparison table it prints.

``bench/`` is outside the doctest paths of ``make test``; the CLI runs each
checkout in a child process (``PYTHONPATH`` set to it), as a comparison does.
"""

from __future__ import annotations

import doctest
from pathlib import Path

import bench.bench_edge_cost as ec

ROOT = Path(__file__).resolve().parents[3]


def test_docstring_examples_run() -> None:
    failed, tried = doctest.testmod(ec, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failed == 0


def test_a_comparison_prints_one_row_per_checkout_with_measured_numbers(capsys) -> None:
    ec.main(["--trees", str(ROOT), str(ROOT), "--rounds", "1", "--warm", "500",
             "--steady", "100", "--calls"])
    lines = capsys.readouterr().out.splitlines()
    rows = [ln for ln in lines if ln.startswith(f"| {ROOT} |")]
    assert len(rows) == 2, lines
    cells = rows[0].strip("|").split("|")
    warm_cpu, steady = float(cells[1]), float(cells[3].replace(",", ""))
    assert warm_cpu > 0 and steady > 0 and float(cells[5]) > 50  # a monitor's event is many calls
