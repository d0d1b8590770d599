"""Issue 13's same-run targets: verdicts from the rows of a run."""

from __future__ import annotations

from rtm.bench.comparison_targets import comparison_targets
from rtm.bench.report import Row
from rtm.bench.stats import Summary


def rooms(
    system: str,
    offered: float,
    deliveries: float,
    *,
    p50: float = 1.0,
    p99: float = 2.0,
    cpu_s: float | None = None,
) -> Row:
    """A rooms row as the bench makes it: a baseline's rows carry the baseline's scenario
    ("socketio", "pipeline"), rtm's the shape's; `traffic` is the shape for both."""
    scenario = {"rtm": "rooms", "pipeline": "pipeline"}.get(system, "socketio")
    return Row(
        scenario,
        "rooms" if system == "rtm" else f"{system} rooms",
        "1000 receivers, rooms of 10",
        offered=offered,
        deliveries=deliveries,
        delivery=Summary(100, p50, p99, p99, p99, p99, p50),
        delivered=int(deliveries * 10),
        server_cpu_s=cpu_s,
        system=system,
        traffic="rooms",
    )


def verdicts(targets: list[tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    return {name: (measured, met) for name, measured, met in targets}


def test_ratios_of_best_steps_in_the_same_run() -> None:
    ours = rooms("rtm", 1000, 10_000)
    best = {
        ("rtm", "rooms"): ours,
        ("socket.io node", "rooms"): rooms("socket.io node", 3500, 35_000),
        ("pipeline", "rooms"): rooms("pipeline", 1200, 12_000),
    }
    found = verdicts(comparison_targets(best, [ours]))
    assert found["rooms: best deliveries/s ≥ 1.0x Node socket.io (same run)"] == (
        "0.29x (10000 vs 35000 deliveries/s)",
        "no",
    )
    assert found["rooms: best deliveries/s ≥ 70% of `pipeline` (same run)"] == (
        "83% (10000 vs 12000 deliveries/s)",
        "yes",
    )


def test_rtm_without_a_passing_step_scores_zero_against_a_baseline() -> None:
    best = {("socket.io node", "rooms"): rooms("socket.io node", 3500, 35_000)}
    found = verdicts(comparison_targets(best, []))
    measured, met = found["rooms: best deliveries/s ≥ 1.0x Node socket.io (same run)"]
    assert measured.startswith("0.00x (no passing step")
    assert met == "no"


def test_latency_at_250_msgs_per_s_needs_both_percentiles() -> None:
    fast = [rooms("rtm", 250, 2500, p50=4.6, p99=11)]
    slow_tail = [rooms("rtm", 250, 2500, p50=4.6, p99=29)]
    name = "rooms at 250 msgs/s: delivery p50 ≤ 5 ms, p99 ≤ 20 ms"
    assert verdicts(comparison_targets({}, fast))[name] == ("p50 4.6 ms, p99 11.0 ms", "yes")
    assert verdicts(comparison_targets({}, slow_tail))[name][1] == "no"


def test_cpu_per_delivery_is_compared_at_the_same_offered_rate() -> None:
    rows = [
        rooms("rtm", 1000, 10_000, cpu_s=1.42),  # 100,000 frames: 14.2 µs each
        rooms("socket.io py", 1000, 10_000, cpu_s=0.62),
        rooms("rtm", 500, 5_000, cpu_s=0.2),  # no python-socketio step at 500: not judged
    ]
    found = verdicts(comparison_targets({}, rows))
    assert found["rooms at 1000 msgs/s: server CPU per delivery ≤ python-socketio's"] == (
        "14 vs 6 µs (2.3x)",
        "no",
    )
    assert not any("at 500 msgs/s" in name for name in found)
