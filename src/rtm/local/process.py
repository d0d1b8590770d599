"""Child processes that die with their parent and stop in an orderly way."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import socket
import subprocess
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None]:
    """A preexec hook asking Linux to SIGTERM the child when its parent dies (no orphans)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - not Linux
        return lambda: None

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    run_as: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session, output appended to `log_path` (or inherited).

    `run_as` names an OS user to run as (only meaningful when we are root).
    """
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - handed to the child
    user = group = None
    extra_groups: list[int] | None = None
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        user, group, extra_groups = entry.pw_uid, entry.pw_gid, []
    try:
        return subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # noqa: PLW1509 - needed for PDEATHSIG
            user=user,
            group=group,
            extra_groups=extra_groups,
        )
    finally:
        if out:
            out.close()


def stop(proc: subprocess.Popen[bytes], *, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int:
    """Send `sig`, wait up to `timeout`, then SIGKILL; returns the exit code.

    Whatever is left of the child's process group afterwards (it leads its own session) is
    SIGKILLed too, so no grandchild outlives it.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            proc.wait(5)
    kill_group(proc.pid)
    return proc.returncode


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal every process of the group `pgid` (a child started in its own session leads one).

    Returns False when no process of the group is left.
    """
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - the group id was reused by someone else's process
        return False
    return True


def descendants(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """Every living descendant of `pid`, parents before children, read from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    queue = list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        found.append(child)
        queue += children.get(child, [])
    return found


def tree_states(pid: int, proc: Path = Path("/proc")) -> Counter[str]:
    """How many of `pid` and its descendants are in each state (`T`: stopped), from /proc."""
    states: Counter[str] = Counter()
    for member in [pid, *descendants(pid, proc)]:
        with contextlib.suppress(OSError, ValueError):
            stat = (proc / str(member) / "stat").read_text()
            states[stat[stat.rindex(")") + 2 :].split()[0]] += 1
    return states


def signal_tree(pid: int, sig: int) -> int:
    """Signal `pid`, then each of its descendants; returns how many were signalled.

    Not the process group: PostgreSQL's backends call setsid(), so the postmaster's group is the
    postmaster alone. The parent goes first, so that a SIGSTOP keeps it from forking new
    children while the others are found.
    """
    signalled = 0
    for target in [pid, *descendants(pid)]:
        try:
            os.kill(target, sig)
        except ProcessLookupError:  # exited meanwhile
            continue
        signalled += 1
    return signalled


# The ports `free_port` handed out lately: the OS may give the same free port to two binds in a
# row (seen: a nats-server started with its client and monitor ports equal, and failing).
_HANDED_OUT: deque[int] = deque(maxlen=256)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it), and none of the last 256 this
    process was given, so that `free_port(), free_port()` are two different ports."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.append(port)
            return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when we can bind `host:port` (nobody else listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll `check` until true; raise `TimeoutError` naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


def is_root() -> bool:
    """PostgreSQL refuses to run as root; we then run it as an unprivileged user."""
    return os.geteuid() == 0
