"""Identifiers: server ids are UUIDv7 so that they sort by creation time."""

from __future__ import annotations

import uuid

import uuid6


def new_id() -> uuid.UUID:
    """A fresh UUIDv7 as a plain `uuid.UUID` (drivers and pydantic know that type)."""
    return uuid.UUID(int=uuid6.uuid7().int)


def parse_id(value: str) -> uuid.UUID:
    """Parse a client-supplied id; raises `ValueError` on anything that is not a UUID."""
    return uuid.UUID(value)
