"""The embedded runner: nats-server and PostgreSQL from their wheels, and the service supervisor.

Used by `rtm up` / `rtm dev` and by the test fixtures, so the system a developer runs is the
system the tests run.
"""
