"""What the scenarios of one `rtm bench` run share, and the helpers they all use.

Each scenario family has a module of its own (`scenario_traffic`, `scenario_idle`,
`scenario_resume`, `scenario_baseline`); they meet here: one population of users (signed up once,
reused by every scenario), one /proc sampler, one step counter (step numbers are unique across
the run, so a late delivery of an earlier step is told apart), and the rows measured so far.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence

import httpx

from rtm.bench.model import SocketSpec
from rtm.bench.options import Options
from rtm.bench.pool import WorkerPool
from rtm.bench.population import Population
from rtm.bench.procstat import ProcessSampler, Watched
from rtm.bench.progress import Display
from rtm.bench.report import Row, fmt_row_line
from rtm.bench.target import Target


class Session:
    """The state of one run; `rows` collects every measured window."""

    def __init__(self, options: Options, target: Target, display: Display) -> None:
        self.options = options
        self.target = target
        self.display = display
        self.population = Population(target.auth, target.producer, display.status)
        self.sampler = ProcessSampler()
        self.rows: list[Row] = []
        # (system, shape) → the best step of its ramp: ("rtm", "rooms"), ("bare", "fanout"),
        # ("pipeline", "rooms"), ("socket.io node", "rooms")...
        self.best: dict[tuple[str, str], Row] = {}
        self.setup_notes: list[str] = []
        self._step = 0

    def next_step(self) -> int:
        """A step number not used before in this run."""
        self._step += 1
        return self._step

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        self.display.log(fmt_row_line(row))
        return row

    def watch(self, extra: Sequence[Watched]) -> list[Watched]:
        """The system's processes and `extra`: what a measured window samples."""
        return [*self.target.watched(), *extra]

    async def quiesce(self) -> None:
        """Wait until the services hold no WebSocket of ours (closing takes them a moment)."""
        bases = [*self.target.producers, *self.target.consumers]
        deadline = time.monotonic() + 15
        async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
            while time.monotonic() < deadline:
                total = 0.0
                for base in bases:
                    try:
                        text = (await client.get(base + "/metrics")).text
                    except httpx.HTTPError:
                        return
                    match = re.search(r"^rtm_\w+_ws_connections (\S+)$", text, re.MULTILINE)
                    total += float(match.group(1)) if match else 0.0
                if total == 0:
                    return
                await asyncio.sleep(0.25)


def chunks(items: Sequence[SocketSpec], parts: int) -> list[list[SocketSpec]]:
    """`items` dealt round-robin into `parts` lists, one a load-generator worker."""
    return [list(items[i::parts]) for i in range(parts)]


def loadgen(pool: WorkerPool) -> list[Watched]:
    """The pool's load-generator processes, named as the resource table groups them."""
    return [Watched(f"loadgen-{i}", pid) for i, pid in enumerate(pool.pids)]
