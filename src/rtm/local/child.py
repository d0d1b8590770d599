"""One supervised child: the loop that keeps it running.

The loop owns the process: it spawns it, pumps its output, probes its readiness, and decides what
an exit means. An exit the loop asked for (`restart`, `hold`, `close`) is not a crash; any other
exit, whatever its code, is one, and is paced by the `RestartPolicy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pwd
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rtm.local.backoff import CrashHistory, RestartPolicy
from rtm.local.output import LineSink, LineSplitter, LogFile
from rtm.local.process import die_with_parent, kill_group, signal_tree
from rtm.local.spec import ChildSpec, ChildStatus, State

logger = logging.getLogger("rtm.local.supervisor")

# What preparing and spawning a process raises when it cannot start: a missing binary or folder,
# a failing prepare step (initdb), an OS user (`run_as`) that does not exist.
_START_FAILURES: tuple[type[Exception], ...] = (
    OSError,
    RuntimeError,
    subprocess.SubprocessError,
    KeyError,
)

_PROBE_TIMEOUT = 5.0
_PROBE_FAST = 0.1  # until first ready: readiness time is what `rtm up` reports
_PROBE_SLOW = 2.0  # afterwards: notice a dependency going away


@dataclass(frozen=True, slots=True)
class ChildContext:
    """What every child of one supervisor shares."""

    policy: RestartPolicy
    log_dir: Path
    sink: LineSink | None
    stop_timeout: float
    rng: Callable[[], float]
    on_change: Callable[[ChildStatus], None]


class Child:
    """The supervision loop of one child; all methods run on the supervisor's loop."""

    def __init__(self, spec: ChildSpec, context: ChildContext) -> None:
        self.spec = spec
        self._ctx = context
        self._history = CrashHistory(context.policy)
        self._log = LogFile(context.log_dir / f"{spec.name}.log")
        self.status = ChildStatus(spec.name, State.STOPPED, log_path=self._log.path)
        self._proc: asyncio.subprocess.Process | None = None
        # Resolved when the current run has fully ended (exit seen, output drained): one per
        # run, so a waiter can never confuse this run's end with the next run's.
        self._run_over: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._run_over.set_result(None)
        self._wake = asyncio.Event()
        self._want_up = True
        self._closing = False
        self._asked_to_exit = False
        self._task: asyncio.Task[None] | None = None
        self._terminator: asyncio.Task[None] | None = None

    def _set(self, **changes: Any) -> None:
        self.status = replace(self.status, **changes)
        self._ctx.on_change(self.status)

    def start(self) -> None:
        if self._task is not None:  # already supervised
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"supervise {self.spec.name}"
        )

    async def _run(self) -> None:
        try:
            while not self._closing:
                if not self._want_up:
                    if self.status.state is not State.FAILED:
                        self._set(state=State.STOPPED, pid=None)
                    await self._sleep(None)
                    continue
                code = await self._run_once()
                if self._closing or self._asked_to_exit or not self._want_up:
                    self._asked_to_exit = False
                    continue
                await self._after_crash(code)
        finally:
            self._log.close()

    async def _sleep(self, seconds: float | None) -> None:
        """Sleep until woken (`restart`, `release`, `close`) or `seconds` pass."""
        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _after_crash(self, code: int | None) -> None:
        name, log = self.spec.name, self._log.path
        how = f"exited with code {code}" if code is not None else "could not start"
        count = self._history.record(time.monotonic())
        if self._history.exhausted():
            window = self._ctx.policy.window
            logger.error(
                "%s %s: crashed %d times within %.0fs; giving up (see %s)",
                name,
                how,
                count,
                window,
                log,
            )
            self._want_up = False
            detail = f"crashed {count} times in {window:.0f}s"
            self._set(state=State.FAILED, pid=None, detail=detail)
            return
        delay = self._ctx.policy.delay(count, self._ctx.rng)
        logger.warning("%s %s; restarting in %.1fs (restart %d)", name, how, delay, count)
        self._set(
            state=State.BACKOFF,
            pid=None,
            restarts=self.status.restarts + 1,
            detail=f"{how}; restarting in {delay:.1f}s",
        )
        await self._sleep(delay)

    async def _run_once(self) -> int | None:
        """Prepare, spawn, and wait for the exit; returns the exit code (None: never started)."""
        self._run_over = asyncio.get_running_loop().create_future()
        self._wake.clear()  # a wake-up from before this run is moot now
        self._set(state=State.STARTING, pid=None, detail="", ready_after=None)
        try:
            if self.spec.prepare is not None:
                await asyncio.to_thread(self.spec.prepare)
            if not self._want_up or self._closing:  # stopped while preparing
                self._run_over.set_result(None)
                return None
            proc = await self._spawn()
        except _START_FAILURES as exc:  # a failed start is a crash: paced, counted, reported
            logger.error("%s could not start: %s", self.spec.name, exc)
            self._log.mark(f"could not start: {exc}")
            self._run_over.set_result(None)
            return None
        except Exception as exc:  # last line of defence of the supervising task: a bug
            logger.exception("%s could not start", self.spec.name)
            self._log.mark(f"could not start: {exc!r}")
            self._run_over.set_result(None)
            return None
        self._proc = proc
        if self._closing or not self._want_up:  # stopped while we were spawning it
            self._terminator = asyncio.create_task(self._terminate())
        started = time.monotonic()
        self._log.mark(f"started pid {proc.pid}: {' '.join(self.spec.argv)}")
        logger.debug("%s started (pid %d)", self.spec.name, proc.pid)  # "is ready" says more
        self._set(pid=proc.pid)
        assert proc.stdout is not None
        pump = asyncio.create_task(self._pump(proc.stdout))
        probe = asyncio.create_task(self._probe(proc, started))
        code = await proc.wait()
        probe.cancel()  # it also stops by itself once it sees the exit
        # Grandchildren may hold the pipe open: end the group, then drain what is left.
        kill_group(proc.pid)
        _, still_open = await asyncio.wait({pump}, timeout=2.0)
        if still_open:
            pump.cancel()
            logger.warning("%s: output still open after exit; dropping the rest", self.spec.name)
        await asyncio.wait({probe, *still_open}, timeout=_PROBE_TIMEOUT + 1)
        self._proc = None
        self._log.mark(f"exited with code {code}")
        self._set(last_exit=code, pid=None)
        self._run_over.set_result(None)
        return code

    async def _spawn(self) -> asyncio.subprocess.Process:
        user: dict[str, Any] = {}
        if self.spec.run_as is not None:
            entry = pwd.getpwnam(self.spec.run_as)
            user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        return await asyncio.create_subprocess_exec(
            *self.spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(self.spec.env) if self.spec.env is not None else None,
            cwd=self.spec.cwd,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # PDEATHSIG: no orphan if we die
            **user,
        )

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        splitter = LineSplitter()
        while chunk := await stream.read(65536):
            for line in splitter.feed(chunk):
                self._emit(line)
        for line in splitter.flush():
            self._emit(line)

    def _emit(self, line: bytes) -> None:
        self._log.write(line)
        if self._ctx.sink is not None:
            text = line.decode("utf-8", "replace")
            if self.spec.show is None or self.spec.show(text):
                self._ctx.sink.write_line(self.spec.name, text)

    async def _probe(self, proc: asyncio.subprocess.Process, started: float) -> None:
        """Track readiness for as long as this run lives (never reports a dead run as ready)."""
        probe = self.spec.probe
        while proc.returncode is None:
            if probe is None:
                reason = None
            else:
                try:
                    async with asyncio.timeout(_PROBE_TIMEOUT):
                        reason = await probe()
                except TimeoutError:
                    reason = f"readiness check timed out after {_PROBE_TIMEOUT:.0f}s"
                except Exception as exc:  # last line of defence: a probe that raises is a bug
                    logger.exception("%s: readiness check failed", self.spec.name)
                    reason = f"{type(exc).__name__}: {exc}"
            if proc.returncode is not None:
                return
            state = self.status.state
            if reason is None and state is not State.READY:
                took = time.monotonic() - started
                first = self.status.ready_after is None
                after = took if first else self.status.ready_after
                self._set(state=State.READY, detail="", ready_after=after)
                if first:
                    logger.info("%s is ready (%.1fs)", self.spec.name, took)
                else:
                    logger.info("%s is ready again", self.spec.name)
            elif reason is not None and state is State.READY:
                self._set(state=State.NOT_READY, detail=reason)
                logger.warning("%s is not ready: %s", self.spec.name, reason)
            elif reason is not None and reason != self.status.detail:
                self._set(detail=reason)
            if probe is None:
                return
            ready_once = self.status.ready_after is not None
            await asyncio.sleep(_PROBE_SLOW if ready_once else _PROBE_FAST)

    def signal(self, sig: int, *, group: bool = False) -> None:
        """Send `sig` to the running process (or its whole group); no-op when none runs."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if group:
            kill_group(proc.pid, sig)
        else:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)

    async def crash(self, sig: int, *, tree: bool = False) -> None:
        """Send `sig` as something else would; after SIGKILL, return once the exit is handled.

        Waiting means the status already shows the crash (backoff) when this returns, so a
        caller's `wait_ready` waits for the next run instead of seeing the dead one as ready.
        `tree` signals the process and all its descendants (see `signal_tree`).
        """
        proc, run_over = self._proc, self._run_over
        if proc is None or proc.returncode is not None:
            return
        if tree:
            signal_tree(proc.pid, sig)
        else:
            self.signal(sig)
        if sig == signal.SIGKILL:
            async with asyncio.timeout(self._ctx.stop_timeout + 5):
                await asyncio.shield(run_over)

    async def _terminate(self) -> None:
        """Ask the running process to exit; SIGKILL its group after `stop_timeout`."""
        proc, run_over = self._proc, self._run_over
        if proc is None or proc.returncode is not None:
            return
        self._asked_to_exit = True
        self._set(state=State.STOPPING)
        self.signal(self.spec.stop_signal)
        try:
            async with asyncio.timeout(self._ctx.stop_timeout):
                await proc.wait()
        except TimeoutError:
            logger.warning(
                "%s did not stop within %.0fs; killing it", self.spec.name, self._ctx.stop_timeout
            )
            self.signal(signal.SIGKILL, group=True)
        await run_over

    async def restart(self) -> None:
        self._history.clear()
        self._want_up = True
        if self._proc is not None:
            await self._terminate()  # the loop starts it again at once: the exit was asked for
        else:
            self._wake.set()  # cut a backoff short, or leave `stopped`/`failed`

    async def hold(self) -> None:
        self._want_up = False
        self._wake.set()
        await self._terminate()

    def release(self) -> None:
        if self.status.state is State.FAILED:
            self._history.clear()
        self._want_up = True
        self._wake.set()

    async def close(self) -> None:
        """Stop for good and wait for the loop to end."""
        self._closing = True
        self._want_up = False
        self._wake.set()
        await self._terminate()
        if self._task is not None:
            await self._task
        if self.status.state is not State.FAILED:
            self._set(state=State.STOPPED, pid=None)
