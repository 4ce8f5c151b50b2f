"""The README's options example on 5 scenes x 3 seeds, under the demo's strict verdict.

``python -m driftline demo --drift blur --onset 500 --frames 900 --scene
astronaut`` (the options line of README.md, parsed here) must report the blur
within ``REPORT_WITHIN_S`` of its onset and no alert whose change began before
it, on every scene and seed. Each run is the demo's monitoring path in-process
(``driftline.demo_replay``: the demo's camera and the deployed model's
predictions, the worker's router embedding the frames, ``DEMO_MONITOR``), no
Kafka: ``test_demo.py`` runs one real demo end to end. A run is ~30 s of one
core (embedding 1,800 images is half of it); the 15 share two processes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from driftline.demo import expectation_met
from driftline.demo_replay import demo_runs
from schemas.events import Alert

pytestmark = [pytest.mark.slow]

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
OPTIONS = re.search(r"Options: `python -m driftline demo ([^`]+)`", README)
assert OPTIONS is not None, "README.md lost its demo options example"
ARGS = dict(re.findall(r"--(\w+) (\S+)", OPTIONS.group(1)))
SCENES = ("astronaut", "coffee", "chelsea", "rocket", "china")
CASES = [(scene, seed) for scene in SCENES for seed in (0, 1, 2)]


def _fmt(alerts: list[Alert]) -> list[tuple[str, int | None, int | None]]:
    return [(a.signal, a.change_frame_index, a.detected_frame_index) for a in alerts]


@pytest.fixture(scope="module")
def runs() -> dict[tuple[str, int], list[Alert]]:
    return demo_runs(CASES, drift=ARGS["drift"], onset=int(ARGS["onset"]),
                     frames=int(ARGS["frames"]))


def test_the_readme_example_is_what_is_checked():
    assert set(ARGS) == {"drift", "onset", "frames", "scene"}, OPTIONS.group(0)
    assert ARGS["scene"] in SCENES


@pytest.mark.timeout(1800)  # the module's 15 runs happen in the first test's setup
@pytest.mark.parametrize("case", CASES, ids=[f"{s}-{n}" for s, n in CASES])
def test_the_options_example_meets_the_strict_verdict(
        runs: dict[tuple[str, int], list[Alert]], case: tuple[str, int]) -> None:
    false_alarms, detections, met = expectation_met(runs[case], int(ARGS["onset"]))
    assert not false_alarms, f"false alarms (signal, change, detected): {_fmt(false_alarms)}"
    assert met, f"not reported in time: {_fmt(detections)}"
