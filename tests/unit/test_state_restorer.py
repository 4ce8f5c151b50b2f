"""A worker the group expelled restores every stream it gets back (``StateRestorer.assign``).

A worker frozen past its session timeout (SIGSTOP, a long GC, a cut-off
network) is expelled; another worker takes its partitions and moves their
streams on. When it comes back and is given some of the same partitions,
its live monitors of them miss what the other worker applied: they must be
dropped and restored from the state topic, as for a partition it never had.
The group's generation tells: one it took no part in lies between. (The
whole scene with real workers: ``bench/bench_zombie.py``.)
"""

from __future__ import annotations

from driftline.settings import Settings
from processors.monitor import MonitorRegistry
from processors.stream_app import StateRestorer

TOPICS = frozenset({"t.predictions", "t.embeddings"})


def _restorer() -> StateRestorer:
    registry = MonitorRegistry()
    for part in range(4):
        registry.get(f"cam-{part}", "v1").positions = {f"t.predictions:{part}": 40 + part}
    return StateRestorer(Settings(), registry, TOPICS)


def test_a_rebalance_keeps_the_monitors_of_partitions_kept():
    r = _restorer()
    r.assign({0, 1, 2, 3}, 0)
    r.restored = {0, 1, 2, 3}
    r.assign({2, 3}, 1)  # the next generation: it took part, kept 2 and 3
    assert sorted(k[0] for k in r.registry.monitors) == ["cam-2", "cam-3"]
    assert r.restored == {2, 3}


def test_a_worker_back_from_expulsion_restores_what_it_gets_back():
    r = _restorer()
    r.assign({0, 1, 2, 3}, 0)
    r.restored = {0, 1, 2, 3}
    r.assign({2, 3}, 2)  # generation 1 ran without it: 2 and 3 were another worker's
    assert r.registry.monitors == {}
    assert r.restored == set()  # the next batch of 2 or 3 waits for their restore
