"""Auth's driven adapters: PostgreSQL stores, NATS revocation events, argon2, package data."""
