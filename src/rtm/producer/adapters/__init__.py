"""Driven adapters of the producer: PostgreSQL (asyncpg) and NATS (nats-py)."""
