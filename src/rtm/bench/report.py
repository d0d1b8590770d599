"""Results: one `Row` per measured window, printed as tables and written as Markdown or JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rtm.bench.procstat import Usage
from rtm.bench.stats import Summary, fmt_ms, fmt_rate

# Resource columns, in this order; anything else (consumer-2, ...) follows.
PROCESS_ORDER = (
    "auth",
    "producer",
    "consumer",
    "nats",
    "postgres",
    "loadgen",
    "ws-server",
    "nats-loop",
    "pipeline-server",
    "socketio-py",
    "socketio-node",
)
# What the `vs socket.io` column compares with: Node's when it ran, else python-socketio's.
SOCKETIO_SYSTEMS = (("socket.io node", "node"), ("socket.io py", "py"))


@dataclass
class Row:
    """One measured window: a ramp step, a fixed-rate run, an idle hold, resume rounds."""

    scenario: str  # rtm's shape (rooms, direct, fanout), idle, resume, or the baseline's name
    name: str  # what the table shows first: "rooms", "bare ws rooms", "JetStream publish"
    shape: str
    offered: float | None = None  # msgs/s scheduled
    ingest: float | None = None  # msgs/s acked
    deliveries: float | None = None  # deliveries/s received
    ack: Summary | None = None
    delivery: Summary | None = None  # send→delivery; resume: resume frame → resumed
    lost: int | None = None
    duplicated: int | None = None
    delivered: int | None = None  # message frames received by all receivers in the window
    window_s: float = 0.0
    usage: dict[str, Usage] = field(default_factory=dict)
    passed: bool | None = None  # a traffic step's verdict (ok / over); None for other rows
    best: bool = False  # the highest passing step of a ramp
    ratio: str = ""  # to the bare baseline of the same shape
    vs_pipeline: str = ""  # to the bare pipeline (rooms)
    vs_socketio: str = ""  # to Socket.IO (rooms): "80% node"
    system: str = ""  # "rtm", "bare", "pipeline", "socket.io py", "socket.io node"
    server_cpu_s: float | None = None  # CPU seconds of the system's server processes
    notes: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)  # idle: rss per connection...
    traffic: str = ""  # a traffic step's shape (rooms, direct, fanout), rtm's or a baseline's

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["usage"] = {name: asdict(u) for name, u in self.usage.items()}
        return data


def merge_usage(usage: dict[str, Usage]) -> dict[str, Usage]:
    """consumer-1, consumer-2 … → consumer (summed), producer-1 … → producer, loadgen-0 … →
    loadgen."""
    merged: dict[str, Usage] = {}
    for name, value in usage.items():
        key = name
        if name.startswith("consumer-"):
            key = "consumer"
        elif name.startswith("producer-"):
            key = "producer"
        elif name.startswith("loadgen"):
            key = "loadgen"
        old = merged.get(key)
        merged[key] = (
            value
            if old is None
            else Usage(old.cpu_s + value.cpu_s, old.mem_peak + value.mem_peak, 0)
        )
    return merged


def cpu_per_delivery_us(row: Row) -> float | None:
    """Server CPU microseconds per message frame delivered: every server process of the
    row's system over its window, divided by the deliveries in that window."""
    if row.server_cpu_s is None or not row.delivered:
        return None
    return row.server_cpu_s / row.delivered * 1e6


def ratio(row: Row, base: Row | None) -> str:
    """`row`'s deliveries/s as a percentage of `base`'s ("" when either has none)."""
    if base is None or not base.deliveries or row.deliveries is None:
        return ""
    return f"{row.deliveries / base.deliveries:.0%}"


def compare(best: Mapping[tuple[str, str], Row]) -> None:
    """Fill each rtm best step's ratio columns from the baselines' best steps of the same shape
    in the same run: `vs bare` (the picows broadcast), `vs pipeline`, `vs socket.io` (Node's
    when it ran, else python-socketio's, named in the cell)."""
    for (system, shape), row in best.items():
        if system != "rtm":
            continue
        row.ratio = ratio(row, best.get(("bare", shape)))
        row.vs_pipeline = ratio(row, best.get(("pipeline", shape)))
        for name, label in SOCKETIO_SYSTEMS:
            base = best.get((name, shape))
            if base is not None and base.deliveries:
                row.vs_socketio = f"{ratio(row, base)} {label}"
                break


def _columns(rows: Iterable[Row]) -> list[str]:
    seen: set[str] = set()
    for row in rows:
        seen.update(merge_usage(row.usage))
    ordered = [name for name in PROCESS_ORDER if name in seen]
    return ordered + sorted(seen - set(ordered))


def _opt_rate(value: float | None) -> str:
    return "-" if value is None else fmt_rate(value)


def _opt_us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _summary(value: Summary | None, full: bool) -> str:
    if value is None:
        return "-"
    return value.full() if full else value.short()


def _verdict(row: Row) -> str:
    if row.best:
        return "best"
    if row.passed is None:
        return ""
    return "ok" if row.passed else "over"


def _lost(row: Row) -> str:
    if row.lost is None and row.duplicated is None:
        return "-"
    return f"{row.lost or 0} / {row.duplicated or 0}"


def table(headers: Sequence[str], lines: Sequence[Sequence[str]], *, markdown: bool) -> str:
    """A plain aligned table, or a Markdown one."""
    if markdown:
        out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        out += ["| " + " | ".join(cell.replace("|", "/") for cell in line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
              for i, h in enumerate(headers)]  # fmt: skip
    render = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    render.append("  ".join("-" * w for w in widths))
    render += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(render)


def results_table(rows: Sequence[Row], *, markdown: bool) -> str:
    headers = [
        "scenario",
        "shape",
        "offered msgs/s",
        "in msgs/s",
        "deliveries/s",
        "ack p50 / p99 ms",
        "delivery p50 / p95 / p99 / p99.9 ms",
        "lost / dup",
        "ramp",
        "vs bare",
        "vs pipeline",
        "vs socket.io",
        "server CPU µs/delivery",
    ]
    lines = [
        [
            row.name,
            row.shape,
            _opt_rate(row.offered),
            _opt_rate(row.ingest),
            _opt_rate(row.deliveries),
            _summary(row.ack, full=False),
            _summary(row.delivery, full=True),
            _lost(row),
            _verdict(row),
            row.ratio,
            row.vs_pipeline,
            row.vs_socketio,
            _opt_us(cpu_per_delivery_us(row)),
        ]
        for row in rows
    ]
    return table(headers, lines, markdown=markdown)


def resources_table(rows: Sequence[Row], *, markdown: bool) -> str:
    """CPU seconds and peak memory (MB) per process over each row's window."""
    columns = _columns(rows)
    headers = ["scenario", "shape", "offered", "window s", *columns]
    lines = []
    for row in rows:
        usage = merge_usage(row.usage)
        cells = [row.name, row.shape, _opt_rate(row.offered), f"{row.window_s:.1f}"]
        for name in columns:
            value = usage.get(name)
            if value is None or math.isnan(value.cpu_s):
                cells.append("-")
            else:
                cells.append(f"{value.cpu_s:.1f} s, {value.mem_peak / 1e6:.0f} MB")
        lines.append(cells)
    return table(headers, lines, markdown=markdown)


def notes(rows: Sequence[Row]) -> list[str]:
    found = []
    for row in rows:
        at = f", {_opt_rate(row.offered)} msgs/s" if row.offered is not None else ""
        found += [f"{row.name} ({row.shape}{at}): {n}" for n in row.notes]
    return found


def write_json(path: Path, rows: Sequence[Row], facts: dict[str, dict[str, str]]) -> None:
    path.write_text(
        json.dumps({"facts": facts, "rows": [row.to_json() for row in rows]}, indent=2) + "\n"
    )


HEADER = """# rtm benchmarks

Written by `rtm bench --write BENCHMARKS.md` (package `rtm.bench`): the whole system started as
real processes on this machine, driven by separate load-generator processes with real WebSocket
clients (picows) that sign up and log in like users, on loopback. Rates are open-loop (a message
is due at its scheduled time whatever happened to earlier ones) and latencies are measured from
that scheduled time, so a load generator that falls behind does not hide delay.

`offered`: the scheduled rate; `in`: messages acked per second (stored by JetStream);
`deliveries/s`: message frames received by all receivers per second; `delivery`: scheduled send →
frame received by a receiver (resume: resume frame → `resumed`, every missed message before it).
`lost / dup`: per receiver, acked messages it never received / messages it received twice or out
of order (must be 0 / 0). `ramp`: `ok` when p99 delivery ≤ the threshold with no loss and the rate
kept up, `best` for the highest such step, `over` otherwise.

The ratio columns compare rtm's best step (deliveries/s) with a baseline's best step for the same
shape, ramped the same way by the same load generator in the same run:
`vs bare`: the bare picows broadcast server (WebSocket work only: no storage, no seq, no auth).
`vs pipeline` (rooms): a bare pipeline with rtm's guarantees in one process — picows in,
JetStream publish with `Nats-Msg-Id` awaiting the PubAck before the ack (the run's nats-server
and sync_interval), a pull consumer storing each batch in one PostgreSQL transaction with a dense
per-room seq, then the fan-out; no auth, no validation: the ceiling of this machine with these
guarantees. `vs socket.io` (rooms): Socket.IO broadcasting to rooms (websocket transport, no
storage), Node's socket.io 4.8 when node and npm were there (`node` in the cell), else
python-socketio under uvicorn with uvloop (`py`).
`server CPU µs/delivery`: CPU time of all of the system's server processes over the row's window
per message frame delivered — for rtm auth, producer, consumers, nats-server and PostgreSQL; for
the pipeline its process, nats-server and PostgreSQL; for the other baselines their server
process. It is the cost per delivery that does not depend on how busy the shared machine was.
CPU and memory are over each row's window (the sends and the wait for every delivery after them);
memory is RSS, PostgreSQL's the PSS summed over the postmaster and its backends; `loadgen` is the
load-generator processes together, which share the machine's cores with the system.
"""


def markdown(
    rows: Sequence[Row],
    facts: dict[str, dict[str, str]],
    targets: Sequence[tuple[str, str, str]],
    command: str,
    *,
    header: bool = True,
) -> str:
    """BENCHMARKS.md: the header (unless appending to an existing file) and this run."""
    run = facts.get("Run", {})
    out = [HEADER] if header else []
    out += [f"## Run of {run.get('date', 'unknown date')}", "", f"`{command}`", ""]
    for title, section in facts.items():
        out += [f"### {title}", ""]
        out += [f"- {key}: {value}" for key, value in section.items()]
        out.append("")
    out += [
        "### Throughput and latency",
        "",
        results_table(rows, markdown=True),
        "",
        "### CPU seconds and peak memory per process",
        "",
        resources_table(rows, markdown=True),
        "",
    ]
    if targets:
        out += ["### Targets (issues 6 and 13)", ""]
        out.append(table(["target", "measured", "met"], [list(t) for t in targets], markdown=True))
        out.append("")
    extra = notes(rows)
    if extra:
        out += ["### Notes", ""] + [f"- {n}" for n in extra] + [""]
    return "\n".join(out)


def fmt_row_line(row: Row) -> str:
    """One line for the live display after a step."""
    parts = [f"{row.name} {row.shape}"]
    if row.offered is not None:
        parts.append(f"offered {fmt_rate(row.offered)}/s")
    if row.ingest is not None:
        parts.append(f"in {fmt_rate(row.ingest)}/s")
    if row.deliveries is not None:
        parts.append(f"deliveries {fmt_rate(row.deliveries)}/s")
    if row.ack is not None:
        parts.append(f"ack p50 {fmt_ms(row.ack.p50)} ms")
    if row.delivery is not None:
        parts.append(f"p50 {fmt_ms(row.delivery.p50)} p99 {fmt_ms(row.delivery.p99)} ms")
    if row.lost is not None:
        parts.append(f"lost {row.lost} dup {row.duplicated}")
    verdict = _verdict(row)
    if verdict:
        parts.append(verdict)
    return ", ".join(parts)
