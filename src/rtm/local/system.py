"""The whole local system on one event loop: embedded servers, migrations, supervised services.

Start order: lock the data folder, resolve every port (fail fast, naming every busy one), start the
embedded nats-server and PostgreSQL unless URLs are configured, create the database and apply
migrations, start auth and, once it is ready (it serves the keys that verify tokens), the
producers and consumers together, and wait until every process is ready. `stop` undoes it in
reverse: services first, then the servers they use.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import httpx
import psycopg

from rtm.local import probes
from rtm.local.chatter import PostgresLines, nats_line_worth_showing
from rtm.local.datadir import DataDirLock, remove_data_dir
from rtm.local.errors import RunnerError
from rtm.local.nats import EmbeddedNats
from rtm.local.output import LineSink
from rtm.local.plan import (
    ServiceKind,
    SystemUrls,
    plan_services,
    port_claims,
    probe_host,
    redact,
    service_env,
    urls_for,
)
from rtm.local.ports import resolve_ports
from rtm.local.postgres import EmbeddedPostgres
from rtm.local.settings import RunnerSettings
from rtm.local.spec import ChildSpec, ChildStatus
from rtm.local.status import StatusFile
from rtm.local.supervisor import Supervisor
from rtm.shared.migrate import MIGRATION_FAILURES, apply_migrations

logger = logging.getLogger(__name__)

# What starting the embedded servers raises besides `RunnerError` (a server that never became
# ready): a missing binary or folder, initdb failing, the database not created, an OS user
# (`pg_os_user`) that does not exist.
_INFRA_FAILURES: tuple[type[Exception], ...] = (
    OSError,
    RuntimeError,
    subprocess.SubprocessError,
    psycopg.Error,
    KeyError,
)


class System:
    """`rtm up` as an object. Create, use and stop it on one running event loop.

    Args:
        settings: the runner's settings.
        sink: where children's output lines go (the terminal for `rtm up`; None: log files only).
        services: False starts only the embedded servers and migrations (tests, `rtm migrate`).
        commands: replace a service kind's command (tests run stand-ins before services exist).
        ephemeral: the data is a test's, deleted when it ends: what the embedded PostgreSQL
            keeps outside `data_dir` (as root, see `rtm.local.reachable`) is removed by a later
            start once this process is gone, even if it never got to delete it.
    """

    def __init__(
        self,
        settings: RunnerSettings,
        *,
        sink: LineSink | None = None,
        services: bool = True,
        commands: Mapping[ServiceKind, Sequence[str]] | None = None,
        ephemeral: bool = False,
    ) -> None:
        self.settings = settings
        self._ephemeral = ephemeral
        self._sink = sink
        self._with_services = services
        self._commands: dict[ServiceKind, Sequence[str]] = dict(settings.service_commands)
        self._commands.update(commands or {})
        self._data = settings.data_dir.absolute()
        self._lock = DataDirLock(self._data)
        self._status = StatusFile(self._data / "status.json")
        self._client: httpx.AsyncClient | None = None
        self._infra: Supervisor | None = None
        self._services: Supervisor | None = None
        self.nats: EmbeddedNats | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.urls: SystemUrls | None = None
        self.nats_url: str | None = None
        self.database_url: str | None = None
        self.ready_after: float | None = None
        self._began = time.monotonic()

    @property
    def log_dir(self) -> Path:
        return self._data / "logs"

    async def start(self) -> None:
        """Bring everything up and wait until it is ready; on failure, stop what started.

        Raises:
            RunnerError: (or a subclass) with a message meant for people.
        """
        self._began = time.monotonic()
        started = False
        try:
            self._lock.acquire()  # first: a second runner must not touch the first one's files
            s = self.settings
            ports = resolve_ports(
                port_claims(s, embedded_nats=s.nats_url is None, embedded_pg=s.database_url is None)
            )
            self._client = httpx.AsyncClient(timeout=1.0, trust_env=False)
            try:
                await self._start_infra(ports)
            except _INFRA_FAILURES as exc:  # initdb failed, binary missing, no such OS user...
                raise RunnerError(
                    f"could not start the embedded servers: {type(exc).__name__}: {exc}"
                ) from exc
            try:
                await self.migrate()
            except MIGRATION_FAILURES as exc:  # one line for the user
                url = self.database_url or "?"
                raise RunnerError(
                    f"migrations failed on {redact(url)}: {type(exc).__name__}: {exc}"
                ) from exc
            if self._with_services:
                await self._start_services(ports)
            started = True
        finally:
            if not started:  # whatever stopped it, Ctrl-C included: stop what did start
                await self.stop()
        self.ready_after = time.monotonic() - self._began
        self._status.set_urls(self.urls)

    async def _start_infra(self, ports: Mapping[str, int]) -> None:
        s, specs = self.settings, []
        if s.nats_url is None:
            nats = EmbeddedNats(
                self._data / "nats", ports["nats"], ports["nats_monitor"],
                sync_interval=s.nats_sync_interval,
            )  # fmt: skip
            self.nats = nats
            specs.append(
                ChildSpec(
                    "nats",
                    nats.argv(),
                    cwd=nats.data_dir,
                    prepare=nats.write_config,
                    probe=probes.blocking(nats.healthy, "JetStream not healthy yet"),
                    show=nats_line_worth_showing,
                )
            )
        if s.database_url is None:
            pg = EmbeddedPostgres(
                self._data / "pg", ports["pg"], os_user=s.pg_os_user, ephemeral=self._ephemeral
            )
            self.postgres = pg
            logger.info("preparing PostgreSQL in %s", pg.data_dir)
            await asyncio.to_thread(pg.prepare)
            specs.append(
                ChildSpec(
                    "postgres",
                    pg.argv(),
                    cwd=pg.workdir,
                    run_as=pg.run_as,
                    prepare=pg.prepare,
                    probe=probes.blocking(pg.accepts, "not accepting connections yet"),
                    stop_signal=signal.SIGINT,  # fast shutdown: roll back, checkpoint, exit
                    show=PostgresLines(),
                )
            )
        self.nats_url = s.nats_url or (self.nats.url if self.nats else None)
        self.database_url = s.database_url or (self.postgres.url if self.postgres else None)
        if specs:
            logger.info("starting %s", " and ".join(spec.name for spec in specs))
            self._infra = self._supervisor(specs)
            await self._infra.wait_ready(timeout=s.ready_timeout)
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.ensure_database)

    async def migrate(self) -> None:
        """Apply pending migrations (at start, and in `rtm dev` when migrations change)."""
        assert self.database_url is not None
        applied = await asyncio.to_thread(
            apply_migrations, self.database_url, self.settings.migrations_dir
        )
        if not applied:  # what was applied, `apply_migrations` has said
            logger.info("migrations up to date")

    async def _start_services(self, ports: Mapping[str, int]) -> None:
        assert self.nats_url is not None
        assert self.database_url is not None
        assert self._client is not None
        s, client = self.settings, self._client
        plans = plan_services(s, ports)
        self.urls = urls_for(
            plans,
            s,
            nats_url=self.nats_url,
            database_url=self.database_url,
            nats_monitor=f"http://127.0.0.1:{self.nats.monitor_port}" if self.nats else None,
        )
        inherited = dict(os.environ)
        specs = []
        for plan in plans:
            env = service_env(
                plan, s, ports=ports, nats_url=self.nats_url, database_url=self.database_url,
                log_format=self._log_format(), inherited=inherited,
            )  # fmt: skip
            base = f"http://{probe_host(s.host)}:{plan.http_port}"
            probe = probes.http_ready(client, base)
            if plan.grpc_port is not None:
                grpc_target = f"{probe_host(s.host)}:{plan.grpc_port}"
                probe = probes.all_of(probe, probes.grpc_serving(grpc_target))
            argv = self._commands.get(plan.kind) or plan.argv()
            cwd = self._data if s.isolated else None  # isolated: no stray .env is read
            specs.append(ChildSpec(plan.name, list(argv), env=env, cwd=cwd, probe=probe))
        # auth first: producer and consumer fetch its signing keys (JWKS) as they start, and
        # started together they would retry (and warn) until auth has made its first key.
        logger.info("starting auth")
        self._services = self._supervisor(specs, start=["auth"])
        await self._services.wait_ready(["auth"], timeout=self._time_left())
        others = [plan.name for plan in plans if plan.kind != "auth"]
        logger.info("starting %s", ", ".join(others))
        self._services.start(others)
        await self._services.wait_ready(timeout=self._time_left())

    def _time_left(self) -> float:
        """What remains of `ready_timeout` for the whole start (at least a second)."""
        return max(1.0, self.settings.ready_timeout - (time.monotonic() - self._began))

    def _log_format(self) -> Literal["json", "text"]:
        fmt = self.settings.log_format
        if fmt == "auto":
            return "text" if self._sink is not None and sys.stdout.isatty() else "json"
        return fmt

    def _supervisor(self, specs: list[ChildSpec], start: list[str] | None = None) -> Supervisor:
        """A supervisor of `specs` that has started those named in `start` (default: all)."""
        supervisor = Supervisor(
            specs,
            log_dir=self.log_dir,
            policy=self.settings.restart_policy(),
            sink=self._sink,
            stop_timeout=self.settings.stop_timeout,
            on_change=self._status.update,
        )
        supervisor.start(start)
        return supervisor

    def _owner(self, name: str) -> Supervisor:
        for supervisor in (self._services, self._infra):
            if supervisor is not None and name in supervisor.names:
                return supervisor
        raise KeyError(f"no process named {name!r} (known: {', '.join(self.names)})")

    @property
    def names(self) -> list[str]:
        """Every supervised process: `nats`, `postgres` (when embedded), then the services."""
        return [n for sup in (self._infra, self._services) if sup is not None for n in sup.names]

    def status(self) -> dict[str, ChildStatus]:
        merged: dict[str, ChildStatus] = {}
        for supervisor in (self._infra, self._services):
            if supervisor is not None:
                merged.update(supervisor.status())
        return merged

    def pid(self, name: str) -> int | None:
        return self._owner(name).pid(name)

    async def kill(self, name: str, sig: int = signal.SIGKILL, *, tree: bool = False) -> None:
        """A crash of `name` (SIGKILL by default): the supervisor restarts it with backoff.

        `tree` also signals its descendants (SIGSTOP/SIGCONT of PostgreSQL and its backends).
        """
        await self._owner(name).kill(name, sig, tree=tree)

    async def restart(self, name: str, *, wait: bool = True) -> None:
        """Stop `name` gracefully and start it again; wait until it is ready again."""
        owner = self._owner(name)
        await owner.restart(name)
        if wait:
            await owner.wait_ready([name], timeout=self.settings.ready_timeout)

    async def hold(self, name: str) -> None:
        """Stop `name` and keep it down (an outage) until `release`."""
        await self._owner(name).hold(name)

    async def release(self, name: str, *, wait: bool = True) -> None:
        owner = self._owner(name)
        owner.release(name)
        if wait:
            await owner.wait_ready([name], timeout=self.settings.ready_timeout)

    async def wait_ready(self, names: Sequence[str] | None = None, timeout: float = 30.0) -> None:
        for supervisor in (self._infra, self._services):
            if supervisor is None:
                continue
            mine = [n for n in names if n in supervisor.names] if names is not None else None
            if mine is None or mine:
                await supervisor.wait_ready(mine, timeout=timeout)

    async def wait_failed(self) -> ChildStatus:
        """Block until any supervised process is given up on."""
        waits = [
            asyncio.ensure_future(sup.wait_failed())
            for sup in (self._infra, self._services)
            if sup is not None
        ]
        if not waits:
            await asyncio.Event().wait()
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return next(iter(done)).result()

    def force_kill(self) -> None:
        for supervisor in (self._services, self._infra):
            if supervisor is not None:
                supervisor.force_kill()

    async def stop(self) -> None:
        """Services first (they may flush to NATS and PostgreSQL), then the servers."""
        began = time.monotonic()
        stopped = False
        for supervisor in (self._services, self._infra):
            if supervisor is not None:
                logger.info("stopping %s", ", ".join(supervisor.names))
                await supervisor.stop()
                stopped = True
        self._services = self._infra = None
        if stopped:
            logger.info("everything stopped (%.1fs)", time.monotonic() - began)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._lock.held:  # only the lock's holder owns the status file
            self._status.remove()
            self._lock.release()

    def remove_data(self) -> None:
        """Delete the data folder, PostgreSQL's relocated twin included (tests; after `stop`).

        Raises:
            AlreadyRunningError: another runner uses the folder (its data is not ours to delete).
        """
        if self._lock.held:
            raise RuntimeError("stop the system before removing its data")
        if not self._data.exists():
            return
        self._lock.acquire()
        try:
            remove_data_dir(self._data)
        finally:
            self._lock.release()


__all__ = ["RunnerError", "System"]
