"""Issue 13's targets: rtm against the baselines measured in the same run.

Kept apart from the run (pure functions of its rows) so that the verdicts are unit-tested and a
report states exactly what the issue asks: ratios of best steps in the same run, latency at 250
msgs/s, and server CPU per delivery against python-socketio's at the same offered rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rtm.bench.report import Row, cpu_per_delivery_us

Target = tuple[str, str, str]
LOW_RATE = 250.0  # msgs/s: the "p50 / p99 at 250 msgs/s"


def comparison_targets(best: Mapping[tuple[str, str], Row], rows: Sequence[Row]) -> list[Target]:
    """(target, measured, met) for each of issue 13's same-run targets this run can judge."""
    found: list[Target] = []
    rtm = best.get(("rtm", "rooms"))
    node = best.get(("socket.io node", "rooms"))
    pipeline = best.get(("pipeline", "rooms"))
    if node is not None and node.deliveries:
        share = _share(rtm, node)
        found.append(
            (
                "rooms: best deliveries/s ≥ 1.0x Node socket.io (same run)",
                f"{share:.2f}x ({_deliveries(rtm)} vs {node.deliveries:.0f} deliveries/s)",
                _yes(share >= 1.0),
            )
        )
    if pipeline is not None and pipeline.deliveries:
        share = _share(rtm, pipeline)
        found.append(
            (
                "rooms: best deliveries/s ≥ 70% of `pipeline` (same run)",
                f"{share:.0%} ({_deliveries(rtm)} vs {pipeline.deliveries:.0f} deliveries/s)",
                _yes(share >= 0.7),
            )
        )
    low = _at(rows, "rtm", LOW_RATE)
    if low is not None and low.delivery is not None:
        found.append(
            (
                "rooms at 250 msgs/s: delivery p50 ≤ 5 ms, p99 ≤ 20 ms",
                f"p50 {low.delivery.p50:.1f} ms, p99 {low.delivery.p99:.1f} ms",
                _yes(low.delivery.p50 <= 5 and low.delivery.p99 <= 20),
            )
        )
    found += _cpu_targets(rows)
    return found


def _cpu_targets(rows: Sequence[Row]) -> list[Target]:
    """Server CPU per delivery ≤ python-socketio's, at every offered rate both ran."""
    found: list[Target] = []
    for ours in rows:
        if ours.system != "rtm" or not _rooms(ours) or ours.offered is None:
            continue
        theirs = _at(rows, "socket.io py", ours.offered)
        mine, peer = cpu_per_delivery_us(ours), theirs and cpu_per_delivery_us(theirs)
        if mine is None or not peer:
            continue
        found.append(
            (
                f"rooms at {ours.offered:g} msgs/s: server CPU per delivery ≤ python-socketio's",
                f"{mine:.0f} vs {peer:.0f} µs ({mine / peer:.1f}x)",
                _yes(mine <= peer),
            )
        )
    return found


def _at(rows: Sequence[Row], system: str, offered: float) -> Row | None:
    """The first rooms row of `system` at `offered` msgs/s (a ramp's step or a fixed rate)."""
    for row in rows:
        if row.system == system and _rooms(row) and row.offered == offered:
            return row
    return None


def _rooms(row: Row) -> bool:
    """A step of the rooms shape, rtm's or a baseline's (whose `scenario` is the baseline's
    name, "socketio")."""
    return row.traffic == "rooms"


def _share(ours: Row | None, theirs: Row) -> float:
    assert theirs.deliveries
    return (ours.deliveries or 0.0) / theirs.deliveries if ours is not None else 0.0


def _deliveries(row: Row | None) -> str:
    return "no passing step" if row is None or not row.deliveries else f"{row.deliveries:.0f}"


def _yes(ok: bool) -> str:
    return "yes" if ok else "no"
