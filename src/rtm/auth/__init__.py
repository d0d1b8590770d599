"""The auth service: accounts, sessions and tokens (PROTOCOL.md §3).

Flat package, one noun per module:

    settings     AuthSettings (env RTM_AUTH_*, RTM_TOKEN_ISSUER, the common RTM_*)
    model        domain dataclasses and input rules (usernames, passwords)
    exceptions   the AuthError tree
    ports        Protocols the service needs (stores, revocation notifier)
    service      AuthService: every use case, for both entrypoints
    passwords    argon2id off the event loop
    throttle     login throttling rules
    tokens       signing access tokens, minting refresh tokens
    keys         Ed25519 keys, encryption at rest, JWKs;  keyring: the in-memory key set
    database     the asyncpg pool;  store, store_keys: PostgreSQL adapters
    events       revocation events on NATS (core subject + KV bucket) with an outbox relay
    servicer     gRPC entrypoint;  server: gRPC server with health and reflection
    http         HTTP entrypoint (FastAPI);  schemas: its bodies
    bootstrap    composition root (AuthRuntime);  __main__: `rtm-auth`
"""
