"""`make clean` also removes PostgreSQL data that `rtm up` relocated to /var/tmp (a symlink in
.rtm/pg points at it), so nothing of a clone is left behind."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_clean_removes_relocated_postgres_data(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy(ROOT / "Makefile", clone / "Makefile")
    data = tmp_path / "relocated-pgdata"
    (data / "base").mkdir(parents=True)
    (clone / ".rtm").mkdir()
    (clone / ".rtm" / "pg").symlink_to(data)
    owner = data.with_name(data.name + ".owner")  # rtm.local.reachable's record of its owner
    owner.write_text("{}")

    subprocess.run(
        ["make", "clean", "VENV=.no-venv"], cwd=clone, check=True, capture_output=True, timeout=30
    )

    assert not data.exists()
    assert not owner.exists()
    assert not (clone / ".rtm").exists()
