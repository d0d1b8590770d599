"""`rtm bench`: throughput, latency and footprint of the whole system on this machine.

The command starts the whole system as real processes (or targets one on loopback URLs), drives
it from separate load-generator processes with real WebSocket clients that sign up and log in
like users, samples every process's CPU time and RSS from /proc, and prints a table; `--write`
records it with the machine, versions and settings into a Markdown file (BENCHMARKS.md).

Modules: `cli` (arguments), `options` (what was asked), `scenarios` (runs the scenarios in order
and judges the run), `session` (what the scenarios of a run share), `scenario_idle`,
`scenario_resume`, `scenario_traffic` (rooms, direct, fanout) and `scenario_baseline` (what each
scenario does), `shapes` (traffic shapes and rate ladders), `population` (users and conversations
over HTTP), `loadgen` (the load-generator worker process), `loadgen_sockets` (its WebSocket
clients), `pool` (the orchestrator's side of the workers), `resume` (the resume client),
`baselines` (a bare picows broadcast server and a bare nats-py loop), `stats` (percentiles),
`procstat` (/proc sampling), `target` (starting or targeting the system; versions and machine),
`report` (table and file), `progress` (the live display).
"""
