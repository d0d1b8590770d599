"""Port planning: fixed ports checked up front, 0 resolved to a free port, clear errors."""

from __future__ import annotations

import itertools
import socket
from collections import deque

import pytest

from rtm.local import process
from rtm.local.errors import PortBusyError, RunnerError
from rtm.local.ports import PortClaim, resolve_ports


def everything_free(port: int, host: str) -> bool:
    return True


def test_fixed_ports_are_kept_when_free() -> None:
    claims = [PortClaim("a", "A", 4322, "RTM_A"), PortClaim("b", "B", 8081, "RTM_B")]
    assert resolve_ports(claims, is_free=everything_free) == {"a": 4322, "b": 8081}


def test_zero_picks_a_free_port_distinct_from_the_fixed_ones() -> None:
    """A free port the OS offers that a fixed claim already holds is not handed out twice."""
    offers = iter([8081, 9000, 9001])
    claims = [
        PortClaim("fixed", "F", 8081, "RTM_F"),
        PortClaim("x", "X", 0, "RTM_X"),
        PortClaim("y", "Y", 0, "RTM_Y"),
    ]
    ports = resolve_ports(claims, is_free=everything_free, pick_free=lambda host: next(offers))
    assert ports == {"fixed": 8081, "x": 9000, "y": 9001}


def test_two_zero_claims_never_get_the_same_port() -> None:
    offers = itertools.cycle([7000, 7000, 7001])
    claims = [PortClaim("x", "X", 0, "RTM_X"), PortClaim("y", "Y", 0, "RTM_Y")]
    ports = resolve_ports(claims, is_free=everything_free, pick_free=lambda host: next(offers))
    assert ports == {"x": 7000, "y": 7001}


def test_a_busy_port_fails_naming_the_port_and_the_setting() -> None:
    """The message tells the user exactly what to change."""
    claims = [PortClaim("nats", "embedded NATS", 4322, "RTM_EMBEDDED_NATS_PORT")]
    with pytest.raises(PortBusyError) as caught:
        resolve_ports(claims, is_free=lambda port, host: port != 4322)
    message = str(caught.value)
    assert "port 4322" in message
    assert "RTM_EMBEDDED_NATS_PORT" in message
    assert "0 picks a free one" in message


def test_the_same_fixed_port_twice_fails_naming_both_settings() -> None:
    claims = [
        PortClaim("producer", "producer", 8082, "RTM_PRODUCER_PORT"),
        PortClaim("consumer", "consumer", 8082, "RTM_CONSUMER_PORT"),
    ]
    with pytest.raises(RunnerError, match=r"RTM_PRODUCER_PORT.*RTM_CONSUMER_PORT"):
        resolve_ports(claims, is_free=everything_free)


def test_each_claim_is_checked_on_its_own_host() -> None:
    """Services may bind 0.0.0.0 while the embedded servers stay on 127.0.0.1."""
    seen: list[tuple[int, str]] = []

    def record(port: int, host: str) -> bool:
        seen.append((port, host))
        return True

    claims = [
        PortClaim("nats", "N", 4322, "RTM_N"),
        PortClaim("producer", "P", 8081, "RTM_P", host="0.0.0.0"),
    ]
    resolve_ports(claims, is_free=record)
    assert seen == [(4322, "127.0.0.1"), (8081, "0.0.0.0")]


def test_every_busy_port_is_reported_in_one_error_with_its_setting() -> None:
    """Fixing busy ports takes one run, not one run per port."""
    claims = [
        PortClaim("nats", "embedded NATS", 4322, "RTM_EMBEDDED_NATS_PORT"),
        PortClaim("auth_http", "auth HTTP", 8080, "RTM_AUTH_HTTP_PORT"),
        PortClaim("producer", "producer", 8081, "RTM_PRODUCER_PORT"),
    ]
    with pytest.raises(PortBusyError) as caught:
        resolve_ports(claims, is_free=lambda port, host: port == 4322)
    assert [busy.port for busy in caught.value.busy] == [8080, 8081]
    lines = str(caught.value).splitlines()
    assert any("8080" in line and "RTM_AUTH_HTTP_PORT" in line for line in lines)
    assert any("8081" in line and "RTM_PRODUCER_PORT" in line for line in lines)
    assert "4322" not in str(caught.value)


def test_free_port_never_hands_out_the_same_port_twice_in_a_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The OS may answer two binds to port 0 with the same port; two `free_port()` calls made
    for one server (client and monitor ports) must still differ."""
    answers = iter([40001, 40001, 40002])

    class OneAnswerEach:
        def __init__(self, *_: object) -> None:
            self.port = next(answers)

        def __enter__(self) -> OneAnswerEach:
            return self

        def __exit__(self, *_: object) -> None:
            return None

        def bind(self, _: object) -> None:
            return None

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(process, "_HANDED_OUT", deque(maxlen=256))
    monkeypatch.setattr(socket, "socket", OneAnswerEach)
    assert (process.free_port(), process.free_port()) == (40001, 40002)
