"""Producer and consumer serve their port with the edge protocol of rtm.shared.serving (auth's
is tested over real sockets in tests/integration/auth/test_auth_edges.py)."""

from __future__ import annotations

from rtm.consumer.bootstrap import server as consumer_server
from rtm.consumer.settings import ConsumerSettings
from rtm.producer.bootstrap import server
from rtm.producer.settings import ProducerSettings
from rtm.shared.serving import AddressCap


def edge_limits(http: object) -> tuple[float, float, int]:
    """The limits an edge protocol class was built with (`rtm.shared.serving._EdgeProtocol`)."""
    assert isinstance(http, type)
    limits = vars(http)
    cap = limits["_cap"]
    assert isinstance(cap, AddressCap)
    return limits["_header_timeout_s"], limits["_keep_alive_s"], cap.limit


def test_the_producer_serves_with_the_edge_limits_of_its_settings() -> None:
    settings = ProducerSettings(
        http_header_timeout_s=1.5, http_keep_alive_s=2.5, max_connections_per_address=7,
        ws_ping_interval_s=4, ws_ping_timeout_s=3,
    )  # fmt: skip
    config = server(settings).config
    assert edge_limits(config.http) == (1.5, 2.5, 7)
    assert (config.ws_ping_interval, config.ws_ping_timeout) == (4, 3)


def test_the_consumer_serves_with_the_edge_limits_of_its_settings() -> None:
    settings = ConsumerSettings(
        http_header_timeout_s=1.5, http_keep_alive_s=2.5, max_connections_per_address=7
    )
    assert edge_limits(consumer_server(settings).config.http) == (1.5, 2.5, 7)
