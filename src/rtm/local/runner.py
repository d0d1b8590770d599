"""Two ways to run the whole local system.

* `serve_forever(system)`: `rtm up` / `rtm dev` in the foreground, until SIGINT/SIGTERM/SIGHUP (a
  second one SIGKILLs everything at once) or, for `rtm up`, until the supervisor gives up on a
  process (`rtm dev` keeps going: the next saved change restarts it).
* `LocalSystem`: the same `System` driven from synchronous code (pytest fixtures, scripts). It
  runs on a private event loop in a background thread, so the caller's own event loop (an async
  test's) stays free, and every call is a plain blocking call::

      with LocalSystem(RunnerSettings.for_tests(tmp_path, consumers=2)) as system:
          httpx.get(system.urls.auth + "/health/ready")
          system.kill("consumer-1")            # SIGKILL; the supervisor restarts it
          system.wait_ready(["consumer-1"])
          system.hold("nats"); ...; system.release("nats")   # an outage, then recovery
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from rtm.local.errors import AlreadyRunningError
from rtm.local.output import TerminalSink
from rtm.local.plan import ServiceKind, SystemUrls, consumer_names, producer_names
from rtm.local.settings import RunnerSettings
from rtm.local.spec import ChildStatus
from rtm.local.system import System

logger = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["LocalSystem", "System", "serve_forever"]

# SIGHUP: the terminal went away; stop as cleanly as for Ctrl-C rather than die mid-write.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


async def serve_forever(
    system: System,
    *,
    on_ready: Callable[[System], None],
    background: Callable[[System], Awaitable[None]] | None = None,
    stop_on_failure: bool = True,
) -> int:
    """Start `system`, call `on_ready`, run until a signal or a given-up process; then stop.

    Returns the exit status: 0 after a signal, 1 when a process was given up on. Start-up
    errors (`RunnerError`) propagate after everything started has been stopped.
    """
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            logger.info("%s: stopping everything (again to kill)", signal.Signals(signum).name)
            stopping.set()
        else:
            logger.warning("killing everything now")
            system.force_kill()

    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        starter = asyncio.ensure_future(system.start())
        interrupted = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({starter, interrupted}, return_when=asyncio.FIRST_COMPLETED)
        if not starter.done():
            starter.cancel()  # System.start stops what it started when cancelled
            with contextlib.suppress(asyncio.CancelledError):
                await starter
            return 0
        starter.result()
        on_ready(system)
        watchers: set[asyncio.Future[Any]] = {interrupted}
        if stop_on_failure:
            watchers.add(asyncio.ensure_future(system.wait_failed()))
        if background is not None:
            watchers.add(asyncio.ensure_future(background(system)))
        done, pending = await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        code = 0 if interrupted in done else 1
        if code:
            logger.error("stopping everything: a process could not be kept running")
        await system.stop()
        return code
    finally:
        for signum in _STOP_SIGNALS:
            loop.remove_signal_handler(signum)


class LocalSystem:
    """The whole system as real processes, for tests: start, inspect, break, repair, stop.

    Args:
        settings: usually `RunnerSettings.for_tests(folder, **overrides)`.
        services: False runs only the embedded servers and migrations.
        commands: replace a service kind's command (`{"producer": [...]}`).
        echo: also print every process's output, prefixed, to stderr (logs always go to
            `<data_dir>/logs/<name>.log`).
        cleanup: `stop` also deletes `data_dir` (and PostgreSQL's relocated data, see
            `rtm.local.postgres`); for tests.
    """

    def __init__(
        self,
        settings: RunnerSettings,
        *,
        services: bool = True,
        commands: Mapping[ServiceKind, Sequence[str]] | None = None,
        echo: bool = False,
        cleanup: bool = False,
    ) -> None:
        self.settings = settings
        self._cleanup = cleanup
        self._services = services
        self._commands = commands
        self._echo = echo
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._system: System | None = None
        self._failed: System | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> LocalSystem:
        """Start everything and block until it is ready (`settings.ready_timeout`)."""
        if self._loop is not None:
            raise RuntimeError("already started")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="rtm-local-system", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._system = self._call(self._build_and_start())
        finally:
            if self._system is None:  # whatever stopped it, Ctrl-C included: clean up
                self._shutdown_loop()
                _print_log_tails(self.settings.data_dir / "logs")  # before cleanup deletes them
                if self._cleanup and self._failed is not None:
                    with contextlib.suppress(AlreadyRunningError):  # another runner's data
                        self._failed.remove_data()
        return self

    async def _build_and_start(self) -> System:
        sink = None
        if self._echo:
            names = ["nats", "postgres", "auth", *producer_names(self.settings.producers)]
            sink = TerminalSink(names + consumer_names(self.settings.consumers), sys.stderr)
        system = System(
            self.settings,
            sink=sink,
            services=self._services,
            commands=self._commands,
            ephemeral=self._cleanup,
        )
        self._failed = system  # until start returns: what to clean up if it raises
        await system.start()
        self._failed = None
        return system

    def stop(self) -> None:
        """Stop every process (gracefully, then SIGKILL) and the background loop. Idempotent."""
        if self._loop is None:
            return
        system = self._system
        try:
            if system is not None:
                self._call(system.stop())
        finally:
            self._system = None
            self._shutdown_loop()
        if system is not None and self._cleanup:
            system.remove_data()

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(TimeoutError, RuntimeError):  # a thread still busy; loop gone
            self._call(loop.shutdown_default_executor(), timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> LocalSystem:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- plumbing ------------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the background loop and wait; the System bounds its own waits."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("LocalSystem is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _on_loop(self, action: Callable[[System], T]) -> T:
        system = self._started()

        async def run() -> T:
            return action(system)

        return self._call(run())

    def _started(self) -> System:
        if self._system is None:
            raise RuntimeError("LocalSystem is not started")
        return self._system

    # -- what tests use ------------------------------------------------------------------
    @property
    def urls(self) -> SystemUrls:
        """Every service's base URL, gRPC address, NATS and PostgreSQL URLs."""
        urls = self._started().urls
        if urls is None:
            raise RuntimeError("no services: this LocalSystem was built with services=False")
        return urls

    @property
    def nats_url(self) -> str:
        url = self._started().nats_url
        assert url is not None
        return url

    @property
    def database_url(self) -> str:
        url = self._started().database_url
        assert url is not None
        return url

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def log_path(self, name: str) -> Path:
        """`<data_dir>/logs/<name>.log`: everything the process printed, across restarts."""
        return self._started().log_dir / f"{name}.log"

    def status(self) -> dict[str, ChildStatus]:
        return self._on_loop(lambda system: system.status())

    def pid(self, name: str) -> int | None:
        """The PID of `name`'s current run (None while it is down)."""
        return self._on_loop(lambda system: system.pid(name))

    def kill(self, name: str, sig: int = signal.SIGKILL, *, tree: bool = False) -> None:
        """Crash `name` (`nats`, `postgres`, `auth`, `producer`, `consumer`, `consumer-2`, ...).

        After SIGKILL it returns once the supervisor has seen the exit, so `wait_ready([name])`
        then waits for the restarted process (the supervisor restarts it after its backoff).
        Any other signal is sent and returns at once. `tree=True` also signals every descendant
        of the process, e.g. a frozen database: `kill("postgres", SIGSTOP, tree=True)`, later
        `SIGCONT` the same way (a stopped process has not exited: the supervisor keeps it).
        """
        self._call(self._started().kill(name, sig, tree=tree))

    def restart(self, name: str, *, wait: bool = True) -> None:
        """Graceful stop and start of `name`; by default waits until it is ready again."""
        self._call(self._started().restart(name, wait=wait))

    def hold(self, name: str) -> None:
        """Stop `name` and keep it down (an outage of NATS or PostgreSQL) until `release`."""
        self._call(self._started().hold(name))

    def release(self, name: str, *, wait: bool = True) -> None:
        """Start a held process again; by default waits until it is ready."""
        self._call(self._started().release(name, wait=wait))

    def wait_ready(self, names: Sequence[str] | None = None, timeout: float = 30.0) -> None:
        """Block until the named processes (default: all) are ready; raises `NotReadyError`."""
        self._call(self._started().wait_ready(names, timeout), timeout=timeout + 5)


def _print_log_tails(folder: Path, lines: int = 30) -> None:
    """Show why a start failed: the end of every process's log, on stderr."""
    for log in sorted(folder.glob("*.log")) if folder.is_dir() else []:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- last {len(tail)} lines of {log.name} ---", file=sys.stderr)
        print("\n".join(tail), file=sys.stderr)
