"""`rtm chaos` reads durations the way people write them and prints a replayable command."""

from __future__ import annotations

import argparse

import pytest

from rtm.chaos.cli import _without_seed, parse_duration, parse_gap, parser, schedule_for
from rtm.chaos.faults import ALL_KINDS, FaultKind


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("10m", 600.0), ("1m30s", 90.0), ("1.5h", 5400.0)],
)
def test_durations_take_hours_minutes_and_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "m", "0", "1m 30s"])
def test_a_bad_duration_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_fault_gaps_are_ranges_or_one_value() -> None:
    assert parse_gap("15-30") == (15.0, 30.0)
    assert parse_gap("20") == (20.0, 20.0)
    assert parse_gap("30s-1m") == (30.0, 60.0)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_gap("30-15")


def test_defaults_are_the_issue_10_run() -> None:
    args = parser().parse_args([])
    assert (args.users, args.conversations, args.rate, args.duration) == (20, 10, 150.0, 200.0)
    assert (args.consumers, args.every, args.pause) == (2, (15.0, 30.0), 10.0)
    assert args.faults == list(ALL_KINDS)


def test_the_schedule_follows_the_options() -> None:
    args = parser().parse_args(["--faults", "nats-kill", "--every", "10", "--duration", "1m"])
    schedule = schedule_for(args, seed=3, consumers=2)
    assert [f.at for f in schedule] == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert {f.kind for f in schedule} == {FaultKind.NATS_KILL}
    args = parser().parse_args(["--no-faults"])
    assert schedule_for(args, seed=3, consumers=2) == []


def test_an_unknown_fault_kind_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["--faults", "consumer-kill,reboot"])
    assert exit_.value.code == 2


def test_the_replay_command_drops_the_seed_it_replaces() -> None:
    assert _without_seed(["--seed", "4", "--rate", "10", "--seed=5"]) == ["--rate", "10"]
