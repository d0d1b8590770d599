"""`rtm chaos`: acked messages survive crashes and freezes of every part of rtm (issue 10).

A run starts from a seed: users and conversations made through the public HTTP API, outbox
senders on the producer's WebSocket and resuming receivers on every consumer instance, a steady
load, and a fault schedule (kill -9, SIGTERM, SIGSTOP of the system's processes through
`rtm.local.LocalSystem`). After a drain the checker judges what was acked, stored and delivered,
and every fault gets its recovery time. The same harness runs as `rtm chaos` (any length, a
Markdown report) and as the e2e test tests/e2e/test_chaos.py.

Modules: `checker` (the verdict on a history: pure), `workload` (the seeded plan: pure),
`faults` (fault kinds and schedules: pure), `recovery` (recovery times: pure), `clients`
(clock, logins, reconnect pacing), `sender` (the outbox sender), `receiver` (the resuming
receiver), `inject` (applying faults to a `LocalSystem`), `store` (what PostgreSQL holds),
`run` (one run, start to verdict), `outcome` (the verdict and figures), `report` (summary and
RELIABILITY.md), `logs` (the consumers' lines about a lost message's partition), `cli`.
"""
