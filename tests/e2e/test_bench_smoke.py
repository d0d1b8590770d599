"""`rtm bench` smoke test: every scenario runs for a few seconds at a low rate against one system
it starts, and nothing is lost or duplicated. Speed is measured by the command, never asserted
here (issue 6)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rtm.bench.__main__ import main
from rtm.bench.options import SCENARIOS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

IDLE = 60
RESUME = 100


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of every scenario, scaled down (one system, shared by all scenarios)."""
    folder = tmp_path_factory.mktemp("bench")
    out = folder / "bench.json"
    markdown = folder / "BENCHMARKS.md"
    code = main(
        [
            "all",
            "--connections", "20",
            "--room-size", "5",
            "--fanout-senders", "4",
            "--idle-connections", str(IDLE),
            "--rate", "40",
            "--duration", "2",
            "--resume-messages", str(RESUME),
            "--resume-rounds", "1",
            "--no-node",
            "--quiet",
            "--json", str(out),
            "--write", str(markdown),
        ]
    )  # fmt: skip
    assert code == 0, "rtm bench exited non-zero: a message was lost or duplicated, or it failed"
    data: dict[str, Any] = json.loads(out.read_text())
    data["markdown"] = markdown.read_text()
    return data


def rows_of(report: dict[str, Any], scenario: str) -> list[dict[str, Any]]:
    return [row for row in report["rows"] if row["scenario"] == scenario]


def test_every_scenario_produced_figures(report: dict[str, Any]) -> None:
    for scenario in SCENARIOS:
        assert rows_of(report, scenario), f"no row for {scenario}"


@pytest.mark.parametrize("scenario", ["rooms", "direct", "fanout"])
def test_traffic_loses_and_duplicates_nothing(report: dict[str, Any], scenario: str) -> None:
    [row] = rows_of(report, scenario)
    assert row["lost"] == 0
    assert row["duplicated"] == 0
    assert row["ingest"] > 0
    assert row["deliveries"] > 0
    assert row["delivery"]["count"] > 0
    assert row["ack"]["count"] > 0
    assert row["usage"]["producer"]["cpu_s"] >= 0
    assert row["usage"]["consumer"]["mem_peak"] > 0


def test_idle_connections_stay_open_and_are_weighed(report: dict[str, Any]) -> None:
    [row] = rows_of(report, "idle")
    assert row["figures"]["still_open"] == IDLE
    assert row["figures"]["consumer_rss_after"] > 0
    assert "rss_per_connection_bytes" in row["figures"]


def test_resume_recovers_every_missed_message_once(report: dict[str, Any]) -> None:
    [row] = rows_of(report, "resume")
    assert row["lost"] == 0
    assert row["duplicated"] == 0
    assert row["delivery"]["count"] == 1
    assert row["delivery"]["p50"] > 0


def test_baselines_ran_with_the_same_shapes(report: dict[str, Any]) -> None:
    names = {row["name"] for row in rows_of(report, "baseline")}
    assert {"bare nats core", "bare JetStream publish"} <= names
    assert {"bare ws rooms", "bare ws direct", "bare ws fanout"} <= names
    for row in rows_of(report, "baseline"):
        assert row["ingest"] > 0
        if row["name"].startswith("bare ws"):
            assert row["lost"] == 0
            assert row["duplicated"] == 0


def test_pipeline_and_socketio_baselines_ran_the_rooms_shape(report: dict[str, Any]) -> None:
    [pipeline] = rows_of(report, "pipeline")
    [socketio] = rows_of(report, "socketio")  # python-socketio only: --no-node
    assert pipeline["name"] == "pipeline rooms"
    assert socketio["name"] == "socket.io py rooms"
    for row in (pipeline, socketio):
        assert row["lost"] == 0
        assert row["duplicated"] == 0  # the pipeline's seqs are checked like rtm's
        assert row["deliveries"] > 0
        assert row["delivered"] > 0
        assert row["server_cpu_s"] is not None
    assert {"pipeline-server", "nats", "postgres"} <= set(pipeline["usage"])
    assert "socketio-py" in socketio["usage"]


def test_markdown_names_machine_versions_and_settings(report: dict[str, Any]) -> None:
    text = report["markdown"]
    for needle in ("- cores:", "- cpu:", "nats-server", "PostgreSQL", "sync_interval",
                   "synchronous_commit", "| rooms |", "vs pipeline", "server CPU µs/delivery",
                   "| pipeline rooms |", "| socket.io py rooms |"):  # fmt: skip
        assert needle in text, needle
