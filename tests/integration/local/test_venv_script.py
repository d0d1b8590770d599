"""scripts/venv, make's venv step: it refuses a Python rtm does not support, says what to do
when the Python is missing, and remakes a venv only when another Python version made it (so
`PYTHON=python3.13 make run` after `make run` does not run 3.11's venv)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "venv"
SUPPORTED = ["3.11", "3.12", "3.13"]
MINE = f"{sys.version_info.major}.{sys.version_info.minor}"


def venv(directory: Path, python: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), str(directory), python, *SUPPORTED],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_unsupported_version_is_refused_by_name(tmp_path: Path) -> None:
    made = venv(tmp_path / "venv", "3.10")

    assert made.returncode == 1
    assert "'3.10' is Python 3.10; rtm supports 3.11 3.12 3.13" in made.stderr
    assert not (tmp_path / "venv").exists()


def test_a_missing_python_says_what_to_install(tmp_path: Path) -> None:
    made = venv(tmp_path / "venv", str(tmp_path / "nowhere" / "python3.12"))

    assert made.returncode == 1
    assert "no Python" in made.stderr
    assert "python3.12-venv" in made.stderr
    assert not (tmp_path / "venv").exists()


def test_a_venv_of_another_version_is_made_again_and_only_then(tmp_path: Path) -> None:
    directory = tmp_path / "venv"
    (directory / "bin").mkdir(parents=True)
    stale = directory / "bin" / "python"
    stale.write_text("#!/bin/sh\necho 3.10\n")
    stale.chmod(0o755)

    first = venv(directory, sys.executable)

    assert first.returncode == 0, first.stderr
    assert f"was made with Python 3.10; making it again with {MINE}" in first.stderr
    assert (directory / ".python").read_text() == f"{MINE}\n"
    made = subprocess.run(
        [str(directory / "bin" / "python"), "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(made.stdout.strip()) == directory
    stamp = (directory / ".python").stat().st_mtime_ns
    os.utime(directory / ".python", ns=(stamp - 10**9, stamp - 10**9))

    again = venv(directory, sys.executable)

    assert again.returncode == 0, again.stderr
    assert again.stderr == ""
    assert (directory / ".python").stat().st_mtime_ns == stamp - 10**9
