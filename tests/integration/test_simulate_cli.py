"""``driftline simulate``: every drift kind end to end through the CLI, and into a real broker.

Each kind is recorded with ``--out`` next to a clean recording of the same
camera (same seed): before the onset the two agree event for event, from the
onset on the drifted one differs where that kind should (pixels, predicted
classes, model version) and records the true change point in its meta.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftline.cli import app
from driftline.local_infra import settings_env
from driftline.settings import Settings
from producers.drift_injection import KINDS
from schemas.events import Frame, Prediction
from schemas.wire import decode_as, decode_event

pytestmark = pytest.mark.integration

FRAMES = 24
ONSET = 12


def _record(tmp: Path, *args: str) -> list:
    out = tmp / f"{'-'.join(args) or 'clean'}.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    result = CliRunner().invoke(
        app,
        ["simulate", "--frames", str(FRAMES), "--onset", str(ONSET), "--seed", "3",
         "--scene", "coffee", "--labels", "--out", str(out), *args],
        env=env,
    )
    assert result.exit_code == 0, result.output
    return [decode_event(line) for line in out.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> list:
    return _record(tmp_path_factory.mktemp("clean"))


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_through_simulate(kind: str, clean: list, tmp_path: Path) -> None:
    drifted = _record(tmp_path, "--drift", kind)
    frames = [e for e in drifted if isinstance(e, Frame)]
    clean_frames = [e for e in clean if isinstance(e, Frame)]
    assert len(frames) == FRAMES
    assert [f.meta["drift_active"] for f in frames] == ["0"] * ONSET + ["1"] * (FRAMES - ONSET)
    assert {f.meta["drift"] for f in frames} == {kind}
    assert {f.meta["drift_onset"] for f in frames} == {str(ONSET)}
    # Before the onset the drifted camera is the clean camera.
    assert [f.image for f in frames[:ONSET]] == [f.image for f in clean_frames[:ONSET]]
    after = list(zip(frames[ONSET:], clean_frames[ONSET:], strict=True))
    preds = [e for e in drifted if isinstance(e, Prediction)]
    if kind == "class_mix":
        assert all(a.image == b.image for a, b in after)  # the pixels are the clean camera's
        before = Counter(p.top_class for p in preds[:ONSET])
        new = Counter(p.top_class for p in preds[ONSET:]) - before
        assert sum(new.values()) >= 3, new
    elif kind == "model_version":
        assert all(a.image == b.image for a, b in after)
        assert {e.model_version for e in drifted[:ONSET]} == {"v1"}
        assert {f.model_version for f in frames[ONSET:]} == {"v1-next"}
        clean_conf = [p.confidence for p in clean if isinstance(p, Prediction)][ONSET:]
        assert sum(p.confidence for p in preds[ONSET:]) < sum(clean_conf)
    elif kind == "frozen":
        # The onset frame is the last live one; every frame after it repeats it.
        assert len({f.image for f in frames[ONSET:]}) == 1
        assert frames[ONSET + 1].image != clean_frames[ONSET + 1].image
    else:
        differing = sum(a.image != b.image for a, b in after)
        assert differing == len(after), f"{kind}: only {differing} frames differ"


def test_simulate_publishes_to_a_real_broker(settings: Settings, read_topic) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "driftline", "simulate", "--stream", "cam-x", "--frames", "30",
         "--drift", "blur", "--onset", "10", "--labels"],
        env=settings_env(settings), capture_output=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    frames = [decode_as(Frame, r.value) for r in read_topic(settings.topics.frames, 30)]
    assert len(frames) == 30
    assert {f.stream_id for f in frames} == {"cam-x"}
    assert sorted(f.frame_index for f in frames) == list(range(30))
    assert sum(f.meta["drift_active"] == "1" for f in frames) == 20
    preds = read_topic(settings.topics.predictions, 30)
    assert len(preds) == 30
    assert all(r.key == b"cam-x" for r in preds)


# The photo scenes come from scikit-image / scikit-learn (the `sim` extra). Block
# both the way a missing package looks to Python (sys.modules[name] = None makes
# import and find_spec fail) in a real `driftline` process.
WITHOUT_SIM = """
import sys
sys.modules["skimage"] = None
sys.modules["sklearn"] = None
from driftline.cli import main
sys.argv = ["driftline", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("command", [
    ["simulate", "--frames", "5", "--out", "{tmp}/rec.jsonl"],
    ["demo"],
])
def test_without_the_sim_extra_one_line_names_it(command: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    args = [a.format(tmp=tmp_path) for a in command]
    run = subprocess.run([sys.executable, "-c", WITHOUT_SIM, *args], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "scikit-image" in lines[0] and "pip install 'driftline[sim]'" in lines[0]
    assert not (tmp_path / "rec.jsonl").exists()  # failed before writing anything
