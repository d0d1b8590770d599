"""Driven adapters of the consumer: PostgreSQL, JetStream, core NATS."""
