"""Prometheus metrics of the producer (exposed by the shared `/metrics` route)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SENDS = Counter(
    "rtm_producer_sends_total",
    "Sends answered, by outcome: accepted, duplicate, or the error code",
    ["transport", "outcome"],
)
FRAMES_REFUSED = Counter(
    "rtm_producer_frames_refused_total", "WebSocket frames answered with an error", ["code"]
)
WS_CONNECTIONS = Gauge("rtm_producer_ws_connections", "Open, authenticated WebSocket connections")
WS_CLOSES = Counter(
    "rtm_producer_ws_closes_total", "WebSocket connections closed by the server", ["code"]
)
