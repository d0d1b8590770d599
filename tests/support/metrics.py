"""Reading one sample out of a Prometheus text exposition."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """The value of sample `name` (with exactly `labels`, if given); 0 when absent."""
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and (labels is None or item.labels == labels):
                return float(item.value)
    return 0.0
