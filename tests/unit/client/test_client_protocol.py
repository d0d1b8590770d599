"""The consumer URL carries the cursors (few) or asks for a resume frame (many)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from rtm.client.protocol import (
    MAX_RESUME_CONVERSATIONS,
    consumer_url,
    resume_frames,
    send_frame,
    websocket_url,
)


def test_http_bases_become_websocket_urls() -> None:
    assert websocket_url("http://127.0.0.1:8082/") == "ws://127.0.0.1:8082/v1/ws"
    assert websocket_url("https://rtm.example") == "wss://rtm.example/v1/ws"


def test_few_cursors_go_in_the_url_and_no_frame_is_needed() -> None:
    url, frames = consumer_url("ws://h/v1/ws", {"a": 3, "b": 0})
    assert parse_qs(urlsplit(url).query) == {"cursors": ["a:3,b:0"]}
    assert frames == []


def test_no_cursors_is_an_empty_cursors_parameter_so_nothing_is_held() -> None:
    url, frames = consumer_url("ws://h/v1/ws", {})
    assert url == "ws://h/v1/ws?cursors="
    assert frames == []


def test_many_cursors_ask_for_a_resume_and_go_in_frames_of_at_most_1000() -> None:
    cursors = {f"0193a0b0-0000-7000-8000-{i:012d}": i for i in range(2500)}
    url, frames = consumer_url("ws://h/v1/ws", cursors)
    assert url == "ws://h/v1/ws?resume=1"
    assert [len(f["cursors"]) for f in frames] == [1000, 1000, 500]
    assert {k: v for f in frames for k, v in f["cursors"].items()} == cursors
    assert len(resume_frames({})) == 1
    assert MAX_RESUME_CONVERSATIONS == 1000


def test_sends_wait_until_stored_so_the_ack_carries_seq() -> None:
    assert send_frame("c", "conv", "hi") == {
        "type": "send",
        "client_msg_id": "c",
        "conversation_id": "conv",
        "body": "hi",
        "wait": "stored",
    }
