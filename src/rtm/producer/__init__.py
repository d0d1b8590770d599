"""The producer: everything a client *sends* (docs/protocol.md, "5. Producer").

It validates sends, checks membership, publishes to JetStream with `Nats-Msg-Id` and acks after
the PubAck; it owns conversations and membership (PostgreSQL) and publishes conversation, typing
and read events on core NATS. Layers: `__main__` → `bootstrap` → (`entrypoints` | `adapters`) →
`services` → `domain`.
"""
