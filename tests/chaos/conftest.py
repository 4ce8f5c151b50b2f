"""Chaos tests: start the worker chaos runs' replay as soon as they are collected."""

from __future__ import annotations

import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    """The replay (a minute of CPU) runs in a child process while earlier tests run.

    Only when a run of ``test_worker_chaos`` is selected; the runs wait for it
    (``replay_in_background``).
    """
    runs = ("test_worker_chaos.py::test_worker_killed", "test_worker_chaos.py::test_a_worker")
    if any(run in item.nodeid for item in session.items for run in runs):
        from tests.chaos.test_worker_chaos import replay_in_background

        replay_in_background()
