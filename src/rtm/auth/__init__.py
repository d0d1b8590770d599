"""The auth service: accounts, sessions and tokens (docs/protocol.md, "3. Authentication"), in four
layers.

domain/       pure: model and input rules, exceptions, ports (Protocols), policy, and the
              rules of login throttling, tokens and signing keys
services/     use cases both entrypoints drive: accounts, login, sessions, authentication,
              grants, the key ring
adapters/     PostgreSQL stores (accounts and sessions, signing keys, throttle records),
              NATS revocation events, argon2, the shipped common-password list
entrypoints/  gRPC servicer and server, HTTP front and its bodies, deps, metrics
settings      AuthSettings (env RTM_AUTH_*, RTM_TOKEN_ISSUER, the common RTM_*)
bootstrap     the composition root (`build`, `create_app`, `serve`);  __main__: `rtm-auth`
proto/        generated gRPC stubs (scripts/gen_proto.py)
"""
