"""What is benchmarked: the whole system started for the run, or one already running on loopback
URLs; and the facts a result needs beside it (machine, versions, settings)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

from rtm.bench.errors import BenchError
from rtm.bench.procstat import Watched

KEY_PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "websockets",
    "uvloop",
    "nats-py",
    "asyncpg",
    "orjson",
    "pydantic",
    "picows",
    "python-socketio",
)


def require_loopback(url: str) -> str:
    """`url` if its host is on this machine's loopback; the bench sends traffic nowhere else."""
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise BenchError(f"{url}: rtm bench only sends traffic to loopback addresses (127.0.0.1)")
    return url.rstrip("/")


def ws(base: str) -> str:
    """`http://h:p` → `ws://h:p/v1/ws`."""
    return "ws" + base.removeprefix("http") + "/v1/ws"


@dataclass
class Target:
    """Where the services listen and which processes are theirs (empty when targeted by URL)."""

    auth: str
    producer: str
    consumers: list[str]
    nats_url: str | None
    database_url: str | None
    processes: list[Watched] = field(default_factory=list)
    sync_interval: str = "unknown"
    started: bool = False
    more_producers: list[str] = field(default_factory=list)  # beside `producer`, if any

    @property
    def producers(self) -> list[str]:
        """Every producer instance: the load generators spread their senders over them."""
        return [self.producer, *self.more_producers]

    def watched(self) -> list[Watched]:
        return list(self.processes)


class StartedSystem:
    """The whole system on free ports in a scratch folder, as `rtm up` runs it."""

    def __init__(
        self, consumers: int, sync_interval: str, data_dir: Path | None, producers: int = 1
    ) -> None:
        from rtm.local.settings import RunnerSettings

        self._own_dir = data_dir is None
        folder = data_dir or Path(tempfile.mkdtemp(prefix="rtm-bench-"))
        self.settings = RunnerSettings.for_tests(
            folder,
            consumers=consumers,
            producers=producers,
            nats_sync_interval=sync_interval,
            ready_timeout=120.0,
            stop_timeout=10.0,
        )
        from rtm.local.system import System

        self.system = System(self.settings)

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    async def start(self) -> Target:
        await self.system.start()
        urls = self.system.urls
        assert urls is not None
        processes = []
        for name in self.system.names:
            pid = self.system.pid(name)
            if pid is not None:
                processes.append(Watched(name, pid, tree=name == "postgres"))
        return Target(
            auth=urls.auth,
            producer=urls.producer,
            more_producers=list(urls.producers[1:]),
            consumers=list(urls.consumers),
            nats_url=self.system.nats_url,
            database_url=self.system.database_url,
            processes=processes,
            sync_interval=self.settings.nats_sync_interval,
            started=True,
        )

    def restarts(self) -> dict[str, int]:
        """Processes the supervisor restarted during the run (a crash, a failed probe)."""
        return {name: s.restarts for name, s in self.system.status().items() if s.restarts}

    async def stop(self, *, keep: bool) -> None:
        await self.system.stop()
        if self._own_dir and not keep:
            await asyncio.to_thread(self.system.remove_data)


# -- facts -----------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return "unknown"


def machine() -> dict[str, str]:
    load = os.getloadavg()
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu_model(),
        "memory": memory_total(),
        "kernel": f"{platform.system()} {platform.release()}",
        "load average at start": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    }


def nats_server_version() -> str:
    try:
        from rtm.local.nats import nats_server_binary

        binary = str(nats_server_binary())
    except FileNotFoundError:
        found = shutil.which("nats-server")
        if found is None:
            return "unknown"
        binary = found
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return "unknown"
    return out.stdout.strip().removeprefix("nats-server: ") or "unknown"


async def postgres_facts(database_url: str | None) -> dict[str, str]:
    """PostgreSQL's version and durability settings (read from the server itself)."""
    if database_url is None:
        return {}
    import asyncpg

    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        facts = {"PostgreSQL": str(await conn.fetchval("SHOW server_version"))}
        for setting in ("synchronous_commit", "fsync", "wal_sync_method", "shared_buffers"):
            facts[setting] = str(await conn.fetchval(f"SHOW {setting}"))
        return facts
    finally:
        await conn.close()


def versions() -> dict[str, str]:
    found = {"Python": platform.python_version(), "nats-server": nats_server_version()}
    for name in KEY_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
