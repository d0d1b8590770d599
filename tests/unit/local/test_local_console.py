"""What `rtm up` prints about the web chat page in its ready banner."""

from __future__ import annotations

from pathlib import Path

from rtm.local.console import web_page_rows
from rtm.local.plan import SystemUrls

URLS = SystemUrls(
    auth="http://127.0.0.1:8080",
    auth_grpc="127.0.0.1:50051",
    producer="http://127.0.0.1:8081",
    consumers=("http://127.0.0.1:8082",),
    nats="nats://127.0.0.1:4322",
    database="postgresql://postgres@127.0.0.1:5532/rtm",
)


def test_the_banner_opens_with_the_chat_page_url(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")
    assert web_page_rows(URLS, tmp_path) == [("chat", "http://127.0.0.1:8080/chat/")]


def test_a_page_not_built_is_named_with_how_to_build_it(tmp_path: Path) -> None:
    [(label, text)] = web_page_rows(URLS, tmp_path / "dist")
    assert label == "chat"
    assert "make web" in text
    assert text.endswith("http://127.0.0.1:8080/chat/")
