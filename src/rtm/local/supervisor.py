"""Supervise child processes on an asyncio loop: start, watch, restart, report state, stop.

A crashed child (any exit the supervisor did not ask for) is restarted after a capped
exponential backoff with jitter, and the log says so
(`producer exited with code -9; restarting in 1.2s (restart 2)`). After more crashes within a
window than the `RestartPolicy` allows, the supervisor gives up on it loudly (state `failed`, an
ERROR line naming its log file) instead of restarting forever.

Each child runs in its own session (process group) and gets SIGTERM if the supervisor's process
dies (PDEATHSIG). Stopping sends the child's stop signal, waits `stop_timeout`, then SIGKILLs the
whole group; after any exit the group is SIGKILLed, so no grandchild outlives its parent.

Output: each line goes to the `LineSink` (the terminal, prefixed with the name) and to
`<log_dir>/<name>.log`.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Callable, Iterable
from pathlib import Path

from rtm.local.backoff import RestartPolicy
from rtm.local.child import Child, ChildContext
from rtm.local.errors import NotReadyError, ServiceFailedError
from rtm.local.output import LineSink
from rtm.local.spec import ChildSpec, ChildStatus, Probe, State

__all__ = ["ChildSpec", "ChildStatus", "Probe", "State", "Supervisor"]

StatusListener = Callable[[ChildStatus], None]


class Supervisor:
    """Runs a set of children. Create it, and call every method, on one running event loop."""

    def __init__(
        self,
        specs: Iterable[ChildSpec],
        *,
        log_dir: Path,
        policy: RestartPolicy | None = None,
        sink: LineSink | None = None,
        stop_timeout: float = 10.0,
        rng: Callable[[], float] = random.random,
        on_change: StatusListener | None = None,
    ) -> None:
        self._changed = asyncio.Condition()
        self._listener = on_change
        self._pending: set[asyncio.Task[None]] = set()
        context = ChildContext(
            policy=policy or RestartPolicy(),
            log_dir=log_dir,
            sink=sink,
            stop_timeout=stop_timeout,
            rng=rng,
            on_change=self._notify,
        )
        self._children: dict[str, Child] = {}
        for spec in specs:
            if spec.name in self._children:
                raise ValueError(f"two children named {spec.name!r}")
            self._children[spec.name] = Child(spec, context)
        self._started = False

    @property
    def names(self) -> list[str]:
        return list(self._children)

    def _notify(self, status: ChildStatus) -> None:
        if self._listener is not None:
            self._listener(status)
        task = asyncio.get_running_loop().create_task(self._wake_waiters())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _wake_waiters(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _child(self, name: str) -> Child:
        try:
            return self._children[name]
        except KeyError:
            known = ", ".join(self._children)
            raise KeyError(f"no process named {name!r} (known: {known})") from None

    def start(self, names: Iterable[str] | None = None) -> None:
        """Spawn the named children, every one by default (returns at once; `wait_ready`
        waits for them). Calling it again starts others: children that depend on one (producer
        and consumer on auth's keys) start once it is ready, instead of retrying meanwhile."""
        self._started = True
        chosen = self.names if names is None else list(names)
        for child in [self._child(name) for name in chosen]:
            child.start()

    def status(self) -> dict[str, ChildStatus]:
        return {name: child.status for name, child in self._children.items()}

    def pid(self, name: str) -> int | None:
        """The running process of `name`, or None between runs."""
        return self._child(name).status.pid

    async def wait_ready(self, names: Iterable[str] | None = None, timeout: float = 60.0) -> None:
        """Return once every named child (all by default) is ready.

        Raises:
            ServiceFailedError: one of them crashed too often meanwhile.
            NotReadyError: the deadline passed; the message lists each laggard and its log.
        """
        wanted = [self._child(name) for name in (names if names is not None else self.names)]

        def settled() -> bool:
            states = [child.status.state for child in wanted]
            return State.FAILED in states or all(state is State.READY for state in states)

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(settled)
        except TimeoutError:
            laggards = [c.status for c in wanted if c.status.state is not State.READY]
            raise NotReadyError(
                f"not ready after {timeout:.0f}s: " + "; ".join(map(describe, laggards))
            ) from None
        failed = [c.status for c in wanted if c.status.state is State.FAILED]
        if failed:
            raise ServiceFailedError("; ".join(map(describe, failed)))

    async def wait_failed(self) -> ChildStatus:
        """Block until the supervisor gives up on some child; returns that child's status."""

        def failed() -> list[ChildStatus]:
            return [c.status for c in self._children.values() if c.status.state is State.FAILED]

        async with self._changed:
            await self._changed.wait_for(lambda: bool(failed()))
        return failed()[0]

    async def kill(self, name: str, sig: int = signal.SIGKILL, *, tree: bool = False) -> None:
        """Send `sig` to the child (`tree`: and its descendants) as something else would: an
        exit is a crash, restarted by the policy.

        After SIGKILL it returns once the supervisor has seen the exit (state `backoff`).
        """
        await self._child(name).crash(sig, tree=tree)

    async def restart(self, name: str) -> None:
        """Deliberately stop and start again now; forgets past crashes (the code may be new)."""
        await self._child(name).restart()

    async def hold(self, name: str) -> None:
        """Stop the child and keep it down until `release`."""
        await self._child(name).hold()

    def release(self, name: str) -> None:
        """Start a held (or given-up) child again."""
        self._child(name).release()

    def force_kill(self) -> None:
        """SIGKILL every child's process group now (a second Ctrl-C during `stop`)."""
        for child in self._children.values():
            child.signal(signal.SIGKILL, group=True)

    async def stop(self) -> None:
        """Stop every child in parallel (stop signal, then SIGKILL) and end their loops."""
        if not self._started:
            return
        await asyncio.gather(*(child.close() for child in self._children.values()))
        await asyncio.gather(*self._pending)


def describe(status: ChildStatus) -> str:
    """`producer is starting: HTTP 503 ... (log: .rtm/logs/producer.log)`."""
    detail = f": {status.detail}" if status.detail else ""
    crashes = ""
    if status.restarts:
        crashes = f", after {status.restarts} restarts (last exit code {status.last_exit})"
    where = f" (log: {status.log_path})" if status.log_path else ""
    return f"{status.name} is {status.state.value}{detail}{crashes}{where}"
