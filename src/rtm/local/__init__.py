"""The embedded runner: nats-server and PostgreSQL from their wheels, and the service supervisor.

Used by `rtm up` / `rtm dev` / `rtm migrate` and by the tests, so the system a developer runs is
the system the tests run. Entry points:

* `runner.LocalSystem`: the whole system as real processes from synchronous code (tests, e2e).
* `system.System`: the same on the caller's event loop (`rtm up` runs it via
  `runner.serve_forever`).
* `supervisor.Supervisor`: start, watch, restart (backoff), stop any set of child processes.
* `settings.RunnerSettings`: every knob, from `RTM_*` variables.

Layout: `process` (spawn/stop helpers), `nats` and `postgres` (the embedded servers), `backoff`
(restart pacing), `spec`/`child`/`supervisor` (supervision), `output` (prefixed terminal lines and
log files), `ports` and `plan` (what runs where, pure), `probes` (readiness), `datadir` and
`status` (`.rtm/runner.lock`, `.rtm/status.json`), `dev` (reload on change), `console` (what
`rtm up` prints), `migrate` (`rtm migrate`). Errors: `errors.RunnerError` and its subclasses.
The runner never imports a service: it talks to them only as processes configured by environment
variables.
"""
