"""``scripts/install.sh --check``: is *this* checkout the installed driftline, with its extras?

The check runs from a temporary copy of the checkout (a second clone), never
installs anything, and answers from where Python really finds ``driftline``:
run from the clone, with the clone on PYTHONPATH, a plain ``import driftline``
would find the clone and skip the install while the console script runs
another checkout's code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """The parts of a checkout the check reads: the script, pyproject.toml, the package."""
    dst = tmp_path / "clone"
    (dst / "scripts").mkdir(parents=True)
    (dst / "driftline").mkdir()
    shutil.copy2(ROOT / "scripts" / "install.sh", dst / "scripts" / "install.sh")
    shutil.copy2(ROOT / "pyproject.toml", dst / "pyproject.toml")
    shutil.copy2(ROOT / "driftline" / "__init__.py", dst / "driftline" / "__init__.py")
    return dst


def check(clone: Path, python: str = sys.executable, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, PYTHON=python, PYTHONPATH=str(clone), **env)
    return subprocess.run(["bash", "scripts/install.sh", "--check"], cwd=clone, env=full,
                          capture_output=True, text=True, timeout=60)


def python_seeing(clone: Path, tmp_path: Path) -> str:
    """A venv over this interpreter's packages in which ``driftline`` is the clone."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    # What an editable install of the clone amounts to: the clone on sys.path.
    Path(purelib, "driftline-clone.pth").write_text(f"{clone}\n")
    return str(py)


needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="--check also wants redis-server on PATH")


def test_a_second_clone_is_not_taken_for_the_installed_one(clone: Path) -> None:
    run = check(clone)  # from the clone's directory, the clone on PYTHONPATH
    assert run.returncode == 1, run.stderr
    assert f"not this checkout ({clone.resolve()})" in run.stderr
    # The old check (`import driftline` from the checkout) said "installed":
    old = subprocess.run([sys.executable, "-c", "import driftline; print(driftline.__file__)"],
                         cwd=clone, capture_output=True, text=True, check=True)
    assert old.stdout.startswith(str(clone))


@needs_redis
def test_the_installed_checkout_with_its_extras_passes(clone: Path, tmp_path: Path) -> None:
    run = check(clone, python_seeing(clone, tmp_path))
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""


@needs_redis
def test_a_missing_requirement_of_an_extra_is_an_install(clone: Path, tmp_path: Path) -> None:
    pyproject = clone / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace(
        "[project.optional-dependencies]",
        '[project.optional-dependencies]\nghost = ["driftline[sim]", "no-such-dist-xyz>=1"]',
    ))
    py = python_seeing(clone, tmp_path)
    run = check(clone, py, EXTRAS="ghost")
    assert run.returncode == 1
    assert "not installed: no-such-dist-xyz" in run.stderr
    assert check(clone, py, EXTRAS="sim").returncode == 0
    assert "unknown extra 'nope'" in check(clone, py, EXTRAS="nope").stderr
