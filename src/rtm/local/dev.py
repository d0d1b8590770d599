"""`rtm dev`: restart the services whose code changed, like `air` for Go or uvicorn's reload.

A change under `src/rtm/<service>/` restarts that service only (every consumer instance for the
consumer); a change anywhere else under `src/rtm/` (the shared kernel) restarts every service. A
change to the runner itself (`rtm/local/`, `rtm/cli.py`) cannot be applied to a running runner:
it is reported, and all services restart so that at least they run the new shared code.
Restarting also forgives a service the supervisor had given up on: the fix may be in this change.
A saved `.sql` file in the migrations folder is applied at once (services start with
`RTM_MIGRATE_ON_START=false` under the runner, so nothing else would apply it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from watchfiles import Change, awatch

from rtm.local.system import System
from rtm.shared.migrate import MIGRATION_FAILURES

logger = logging.getLogger(__name__)

_SERVICE_DIRS = ("auth", "producer", "consumer")


def _parts(path: Path, package_dir: Path) -> tuple[str, ...] | None:
    try:
        return path.resolve().relative_to(package_dir.resolve()).parts
    except ValueError:
        return None


def is_runner_code(path: Path, package_dir: Path) -> bool:
    """The runner cannot reload itself: `rtm/local/` and `rtm/cli.py`."""
    parts = _parts(path, package_dir) or ()
    return parts[:1] == ("local",) or parts == ("cli.py",)


def affected_services(
    changed: Iterable[Path], package_dir: Path, names: Sequence[str]
) -> list[str]:
    """Which of the running service `names` must restart after `changed` files changed."""
    hit: set[str] = set()
    for path in changed:
        parts = _parts(path, package_dir)
        if not parts:
            continue
        top = parts[0]
        if top in _SERVICE_DIRS:
            hit.update(n for n in names if n == top or n.startswith(f"{top}-"))
        else:
            return list(names)
    return [name for name in names if name in hit]


def _source_file(change: Change, path: str) -> bool:
    return path.endswith((".py", ".sql"))


async def reload_on_change(system: System, package_dir: Path, services: Sequence[str]) -> None:
    """Watch the code and the migrations until cancelled; apply or restart what changed."""
    migrations = system.settings.migrations_dir.absolute()
    watched = [package_dir] + ([migrations] if migrations.is_dir() else [])
    logger.info("watching %s for changes", ", ".join(map(str, watched)))
    async for changes in awatch(*watched, watch_filter=_source_file, debounce=300):
        paths = sorted({Path(path) for _, path in changes})
        if any(path.suffix == ".sql" for path in paths):
            try:
                await system.migrate()
            except MIGRATION_FAILURES:  # a broken migration must not end `rtm dev`; fix and save
                logger.exception("migrations failed; fix them and save again")
        runner_code = [p for p in paths if is_runner_code(p, package_dir)]
        if runner_code:
            logger.warning(
                "the runner's own code changed (%s); restart `rtm dev` to use it",
                ", ".join(p.name for p in runner_code),
            )
        targets = affected_services([p for p in paths if p.suffix == ".py"], package_dir, services)
        if not targets:
            continue
        names = ", ".join(p.name for p in paths)
        logger.info("%s changed; restarting %s", names, ", ".join(targets))
        await asyncio.gather(*(system.restart(name, wait=False) for name in targets))
