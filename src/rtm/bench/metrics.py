"""The services' own Prometheus counters around a window: where a message's time goes inside.

A step's row gets the differences of a few series between its start and its end: the producer's
ack latency (send frame read → ack written), the consumer's store batches (size and time of the
transaction that stores a batch), its delivery latency (`sent_at` → frame queued to the socket)
and partition-worker restarts. Scraped from `/metrics`; a service that does not answer is skipped.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict

import httpx

# series (histogram sums and counts, counters), summed over labels
WATCHED = (
    "rtm_producer_ack_latency_seconds_sum",
    "rtm_producer_ack_latency_seconds_count",
    "rtm_consumer_db_batch_size_sum",
    "rtm_consumer_db_batch_size_count",
    "rtm_consumer_db_batch_seconds_sum",
    "rtm_consumer_db_batch_seconds_count",
    "rtm_consumer_delivery_latency_seconds_sum",
    "rtm_consumer_delivery_latency_seconds_count",
    "rtm_consumer_partition_restarts_total",
)
_LINE = re.compile(r"^([a-z_]+)(?:\{[^}]*\})? (\S+)$", re.MULTILINE)


def parse(text: str) -> dict[str, float]:
    found: dict[str, float] = defaultdict(float)
    for name, value in _LINE.findall(text):
        if name in WATCHED:
            found[name] += float(value)
    return dict(found)


async def scrape(bases: list[str]) -> dict[str, float]:
    """The watched series, summed over every service in `bases`."""
    total: dict[str, float] = defaultdict(float)
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        answers = await asyncio.gather(
            *(client.get(base + "/metrics") for base in bases), return_exceptions=True
        )
    for answer in answers:
        if isinstance(answer, httpx.Response) and answer.status_code == 200:
            for name, value in parse(answer.text).items():
                total[name] += value
    return dict(total)


def _mean(delta: dict[str, float], stem: str) -> float | None:
    count = delta.get(f"{stem}_count", 0.0)
    return delta.get(f"{stem}_sum", 0.0) / count if count > 0 else None


def explain(before: dict[str, float], after: dict[str, float]) -> tuple[dict[str, float], str]:
    """Figures and one line saying where the time went during the window."""
    delta = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in WATCHED}
    figures: dict[str, float] = {}
    parts: list[str] = []
    ack = _mean(delta, "rtm_producer_ack_latency_seconds")
    if ack is not None:
        figures["producer_ack_mean_ms"] = ack * 1000
        parts.append(f"producer ack mean {ack * 1000:.1f} ms")
    batch = _mean(delta, "rtm_consumer_db_batch_size")
    batch_s = _mean(delta, "rtm_consumer_db_batch_seconds")
    batches = delta.get("rtm_consumer_db_batch_seconds_count", 0.0)
    if batch is not None and batch_s is not None:
        figures.update(
            consumer_batches=batches,
            consumer_batch_mean=batch,
            consumer_batch_mean_ms=batch_s * 1000,
        )
        parts.append(
            f"consumer stored {batches:.0f} batches, mean {batch:.1f} messages in "
            f"{batch_s * 1000:.1f} ms"
        )
    delivery = _mean(delta, "rtm_consumer_delivery_latency_seconds")
    if delivery is not None:
        figures["consumer_delivery_mean_ms"] = delivery * 1000
        parts.append(f"sent_at → queued to sockets mean {delivery * 1000:.1f} ms")
    restarts = delta.get("rtm_consumer_partition_restarts_total", 0.0)
    if restarts:
        figures["partition_restarts"] = restarts
        parts.append(f"{restarts:.0f} partition-worker restarts")
    return figures, "; ".join(parts)
