"""`rtm dev`: a saved file restarts the service it belongs to, and only that one."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from rtm.local.dev import reload_on_change
from rtm.local.settings import RunnerSettings
from rtm.local.system import System
from tests.integration.local.helpers import standin_commands, until


async def test_saving_a_producer_file_restarts_the_producer_only(
    tmp_path: Path, nats_url: str, database_url: str
) -> None:
    package = tmp_path / "rtm"
    (package / "producer").mkdir(parents=True)
    settings = RunnerSettings.for_tests(
        tmp_path / "data",
        nats_url=nats_url,
        database_url=database_url,
        service_commands=standin_commands(),
    )
    system = System(settings)
    await system.start()
    services = ["auth", "producer", "consumer"]
    watcher = asyncio.ensure_future(reload_on_change(system, package, services))
    try:
        before = {name: system.pid(name) for name in services}
        await asyncio.sleep(0.5)  # the watcher subscribes to the folder
        (package / "producer" / "handlers.py").write_text("changed = True\n")
        await until(lambda: system.pid("producer") not in (None, before["producer"]), timeout=10)
        await system.wait_ready(["producer"], timeout=10)
        assert system.pid("auth") == before["auth"]
        assert system.pid("consumer") == before["consumer"]
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await system.stop()
        system.remove_data()
