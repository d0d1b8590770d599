"""The pure parts of `rtm bench`: percentiles, /proc parsing, metrics deltas, tables, arguments."""

from __future__ import annotations

import os
from array import array

import pytest

from rtm.bench import metrics, procstat
from rtm.bench.cli import _parser, options_from
from rtm.bench.errors import BenchError
from rtm.bench.model import ReceiverTally, StepResult
from rtm.bench.options import SCENARIOS
from rtm.bench.pool import StepOutcome
from rtm.bench.procstat import Usage, Watched
from rtm.bench.report import Row, merge_usage, results_table
from rtm.bench.scenario_idle import why_unweighable
from rtm.bench.scenario_traffic import step_row
from rtm.bench.shapes import shape_for
from rtm.bench.stats import percentile, summarize
from rtm.bench.target import require_loopback


def test_percentiles_are_nearest_rank() -> None:
    ordered = [float(v) for v in range(1, 101)]
    assert percentile(ordered, 50) == 50
    assert percentile(ordered, 99) == 99
    assert percentile(ordered, 99.9) == 100
    summary = summarize(reversed(ordered))
    assert summary is not None
    assert (summary.count, summary.p50, summary.max, summary.mean) == (100, 50, 100, 50.5)
    assert summarize([]) is None


def test_own_process_has_cpu_time_and_memory() -> None:
    me = Watched("me", os.getpid())
    assert procstat.cpu_seconds(me) > 0
    assert procstat.memory_bytes(me) > 1_000_000
    tree = Watched("me", os.getpid(), tree=True)
    assert procstat.cpu_seconds(tree) >= procstat.cpu_seconds(me) - 0.05
    window = procstat.Window([me]).start()
    sum(range(200_000))
    usage = window.stop()["me"]
    assert usage.cpu_s >= 0
    assert usage.mem_peak >= usage.mem_end > 0


def test_a_gone_process_reads_as_nothing() -> None:
    gone = Watched("gone", 2**22 + 12345)
    assert procstat.read_stat(gone.pid) is None
    assert procstat.rss_bytes(gone.pid) == 0


def test_metrics_deltas_explain_a_window() -> None:
    before = metrics.parse(
        'rtm_producer_ack_latency_seconds_sum{transport="ws"} 1.0\n'
        'rtm_producer_ack_latency_seconds_count{transport="ws"} 100\n'
        "rtm_consumer_db_batch_size_sum 50\nrtm_consumer_db_batch_size_count 10\n"
        "rtm_consumer_db_batch_seconds_sum 0.1\nrtm_consumer_db_batch_seconds_count 10\n"
    )
    after = metrics.parse(
        'rtm_producer_ack_latency_seconds_sum{transport="ws"} 3.0\n'
        'rtm_producer_ack_latency_seconds_sum{transport="http"} 0.0\n'
        'rtm_producer_ack_latency_seconds_count{transport="ws"} 300\n'
        "rtm_consumer_db_batch_size_sum 250\nrtm_consumer_db_batch_size_count 30\n"
        "rtm_consumer_db_batch_seconds_sum 0.3\nrtm_consumer_db_batch_seconds_count 30\n"
        'rtm_consumer_partition_restarts_total{reason="error"} 2\n'
    )
    figures, line = metrics.explain(before, after)
    assert figures["producer_ack_mean_ms"] == pytest.approx(10.0)
    assert figures["consumer_batch_mean"] == pytest.approx(10.0)
    assert figures["consumer_batch_mean_ms"] == pytest.approx(10.0)
    assert figures["partition_restarts"] == 2
    assert "producer ack mean 10.0 ms" in line


def test_usage_of_several_consumers_and_workers_is_summed() -> None:
    merged = merge_usage(
        {
            "consumer-1": Usage(1.0, 100, 0),
            "consumer-2": Usage(2.0, 200, 0),
            "loadgen-0": Usage(0.5, 10, 0),
            "loadgen-1": Usage(0.5, 10, 0),
        }
    )
    assert merged["consumer"].cpu_s == 3.0
    assert merged["loadgen"].mem_peak == 20


def test_results_table_shows_every_row() -> None:
    rows = [Row("rooms", "rooms", "10 receivers", offered=100, ingest=99.0, lost=0, duplicated=0)]
    text = results_table(rows, markdown=True)
    assert text.splitlines()[2].startswith("| rooms | 10 receivers | 100 | 99 |")


def test_arguments_choose_scenarios_and_scale() -> None:
    options = options_from(_parser().parse_args([]))
    assert options.scenarios == list(SCENARIOS)
    assert options.ramping()
    assert options.idle_count == 10_000
    options = options_from(_parser().parse_args(["rooms", "--rate", "500", "--connections", "100"]))
    assert options.scenarios == ["rooms"]
    assert not options.ramping()
    assert options.idle_count == 1000
    rooms = shape_for("rooms", options)
    assert (rooms.groups, rooms.size, rooms.senders) == (10, 10, 10)
    fanout = shape_for("fanout", options)
    assert (fanout.groups, fanout.size, fanout.senders) == (1, 100, 20)
    with pytest.raises(BenchError):
        options_from(_parser().parse_args(["everything"]))


def test_fanout_ramps_to_its_own_p99_threshold() -> None:
    """Issue 13 judges fan-out to a group of 1,000 at p99 ≤ 100 ms, rooms and direct at 50."""
    options = options_from(_parser().parse_args([]))
    assert [options.p99_threshold(s) for s in ("rooms", "direct", "fanout")] == [50, 50, 100]
    args = ["--p99-ms", "20", "--fanout-p99-ms", "80"]
    options = options_from(_parser().parse_args(args))
    assert [options.p99_threshold(s) for s in ("rooms", "direct", "fanout")] == [20, 20, 80]


def _clean_step(p99_ms: float) -> StepOutcome:
    """A step in which every send was acked and delivered once, in time for its schedule, and
    every delivery took `p99_ms`."""
    second = 1_000_000_000
    result = StepResult(
        worker=0,
        step=1,
        sent=100,
        acked=100,
        acked_by_conversation={"c": 100},
        receivers=[ReceiverTally(0, "c", 100, 0, 0)],
        ack_ms=array("f", [1.0] * 100).tobytes(),
        delivery_ms=array("f", [p99_ms] * 100).tobytes(),
        start_ns=second,
        last_ack_ns=2 * second,
        last_receive_ns=2 * second,
    )
    return StepOutcome.merge([result])


@pytest.mark.parametrize("name", ["fanout", "bare ws fanout", "rooms", "bare ws rooms"])
def test_a_step_is_judged_by_its_shapes_threshold_for_rtm_and_baseline_alike(name: str) -> None:
    options = options_from(_parser().parse_args([]))
    shape = shape_for(name.removeprefix("bare ws "), options)
    row = step_row(shape, name, 100.0, 1.0, _clean_step(70.0), {}, 1.0, options)
    assert row.passed is (shape.name == "fanout")  # 70 ms: within 100, over 50
    assert (row.lost, row.duplicated) == (0, 0)


def test_traffic_goes_to_loopback_only() -> None:
    assert require_loopback("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert require_loopback("ws://localhost:1") == "ws://localhost:1"
    for url in ("http://10.0.0.1:8080", "http://example.com", "http://192.168.1.2"):
        with pytest.raises(BenchError):
            require_loopback(url)


def test_a_step_is_split_in_whole_messages_that_add_up() -> None:
    from rtm.bench.pool import split

    assert split(25, [10, 10]) == [13, 12] or split(25, [10, 10]) == [12, 13]
    assert sum(split(1001, [3, 7, 11])) == 1001
    assert split(5, [0, 4]) == [0, 5]
    assert split(3, [0, 0]) == [0, 0]


def test_rtm_best_steps_are_compared_with_each_baseline_of_their_shape() -> None:
    from rtm.bench.report import compare

    def best(system: str, deliveries: float) -> Row:
        return Row("x", system, "rooms", deliveries=deliveries, system=system, best=True)

    rooms, fanout = best("rtm", 5000.0), best("rtm", 300.0)
    table = {
        ("rtm", "rooms"): rooms,
        ("rtm", "fanout"): fanout,
        ("bare", "rooms"): best("bare", 20_000.0),
        ("bare", "fanout"): best("bare", 1000.0),
        ("pipeline", "rooms"): best("pipeline", 10_000.0),
        ("socket.io py", "rooms"): best("socket.io py", 2500.0),
    }
    compare(table)
    assert (rooms.ratio, rooms.vs_pipeline, rooms.vs_socketio) == ("25%", "50%", "200% py")
    assert (fanout.ratio, fanout.vs_pipeline, fanout.vs_socketio) == ("30%", "", "")
    table[("socket.io node", "rooms")] = best("socket.io node", 4000.0)
    compare(table)
    assert rooms.vs_socketio == "125% node"  # Node's when it ran
    table[("pipeline", "rooms")] = best("pipeline", 0.0)  # a baseline that measured nothing
    compare(table)
    assert rooms.vs_pipeline == ""


def test_server_cpu_is_divided_by_the_deliveries_of_the_window() -> None:
    from rtm.bench.report import cpu_per_delivery_us
    from rtm.bench.scenario_traffic import server_cpu

    usage = {
        "producer": Usage(0.5, 0, 0),
        "consumer-1": Usage(1.0, 0, 0),
        "nats": Usage(0.25, 0, 0),
        "loadgen-0": Usage(9.0, 0, 0),  # the load generator is not the server's cost
        "gone": Usage(float("nan"), 0, 0),
    }
    assert server_cpu(usage, ["producer", "consumer-1", "nats", "gone", "absent"]) == 1.75
    assert server_cpu(usage, ["absent"]) is None
    row = Row("rooms", "rooms", "", delivered=17_500, server_cpu_s=1.75)
    assert cpu_per_delivery_us(row) == pytest.approx(100.0)
    assert cpu_per_delivery_us(Row("rooms", "rooms", "", delivered=0, server_cpu_s=1.0)) is None
    assert cpu_per_delivery_us(Row("rooms", "rooms", "", delivered=10)) is None


def test_results_table_has_the_comparison_columns() -> None:
    row = Row("rooms", "rooms", "10 receivers", deliveries=1000.0, delivered=5000)
    row.ratio, row.vs_pipeline, row.vs_socketio, row.server_cpu_s = "40%", "60%", "150% node", 0.5
    lines = results_table([row], markdown=True).splitlines()
    assert lines[0].endswith("| vs bare | vs pipeline | vs socket.io | server CPU µs/delivery |")
    assert lines[2].endswith("| 40% | 60% | 150% node | 100 |")


def test_pipeline_and_socketio_are_scenarios_run_after_the_baseline() -> None:
    from rtm.bench.options import ordered

    options = options_from(_parser().parse_args(["socketio", "pipeline", "rooms"]))
    assert ordered(options.scenarios) == ["rooms", "pipeline", "socketio"]
    assert {"pipeline", "socketio"} <= set(options_from(_parser().parse_args(["all"])).scenarios)
    assert "pipeline" in _parser().format_help()


def test_an_idle_run_whose_consumer_died_or_lost_connections_is_not_weighed() -> None:
    assert why_unweighable(100_000_000, 150_000_000, 4_000, 4_000) == ""
    assert "gone" in why_unweighable(100_000_000, 0, 4_000, 4_000)
    assert "3999 of 4000" in why_unweighable(100_000_000, 150_000_000, 4_000, 3_999)
