"""The Engine.IO v4 / Socket.IO v5 framing the load generator speaks to the socket.io baseline."""

from __future__ import annotations

import pytest

from rtm.bench import engineio


def test_the_endpoint_asks_for_the_websocket_transport_only() -> None:
    assert engineio.url("ws://127.0.0.1:9000/") == (
        "ws://127.0.0.1:9000/socket.io/?EIO=4&transport=websocket"
    )


def test_the_server_open_packet_is_decoded() -> None:
    packet = engineio.parse(b'0{"sid":"abc","upgrades":[],"pingInterval":25000}')
    assert packet.eio == engineio.EIO_OPEN
    assert packet.sio is None
    assert packet.data["pingInterval"] == 25000


def test_a_ping_is_answered_with_a_pong() -> None:
    assert engineio.parse(b"2").eio == engineio.EIO_PING
    assert engineio.PONG == b"3"


def test_connect_carries_the_auth_payload() -> None:
    assert engineio.connect() == b"40"
    frame = engineio.connect({"room": "g1", "role": "receiver"})
    assert frame == b'40{"room":"g1","role":"receiver"}'
    answer = engineio.parse(b'40{"sid":"xyz"}')
    assert (answer.eio, answer.sio, answer.ack_id) == (4, engineio.SIO_CONNECT, None)
    assert answer.data == {"sid": "xyz"}
    refused = engineio.parse(b'44{"message":"no"}')
    assert refused.sio == engineio.SIO_CONNECT_ERROR


def test_events_with_and_without_an_ack_id_round_trip() -> None:
    frame = engineio.event("send", {"client_msg_id": "c1", "body": "hi"}, ack_id=12)
    assert frame == b'4212["send",{"client_msg_id":"c1","body":"hi"}]'
    packet = engineio.parse(frame)
    assert (packet.sio, packet.ack_id) == (engineio.SIO_EVENT, 12)
    assert packet.data == ["send", {"client_msg_id": "c1", "body": "hi"}]
    plain = engineio.parse(engineio.event("message", {"body": "x"}))
    assert (plain.ack_id, plain.data) == (None, ["message", {"body": "x"}])
    assert engineio.event("message", {}).startswith(engineio.EVENT_PREFIX)


def test_an_ack_names_the_event_it_answers() -> None:
    frame = engineio.ack(7, {"type": "ack", "client_msg_id": "c1"})
    assert frame == b'437[{"type":"ack","client_msg_id":"c1"}]'
    packet = engineio.parse(frame)
    assert (packet.sio, packet.ack_id) == (engineio.SIO_ACK, 7)
    assert packet.data == [{"type": "ack", "client_msg_id": "c1"}]


def test_a_namespace_before_the_ack_id_is_skipped() -> None:
    packet = engineio.parse(b'42/chat,5["x",1]')
    assert (packet.ack_id, packet.data) == (5, ["x", 1])


@pytest.mark.parametrize("frame", [b"", b"hello", b"4", b"4x", b"{}"])
def test_what_is_not_engineio_is_refused(frame: bytes) -> None:
    with pytest.raises(ValueError, match="not a"):
        engineio.parse(frame)
