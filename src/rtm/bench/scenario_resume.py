"""The resume scenario, the orchestrator's side: users and a conversation for the resume client
(`rtm.bench.resume`, its own process), then one row from the rounds it reports."""

from __future__ import annotations

import math

from rtm.bench.pool import ProcessGroup
from rtm.bench.procstat import Watched
from rtm.bench.report import Row
from rtm.bench.session import Session
from rtm.bench.stats import summarize
from rtm.bench.target import ws


async def run_resume(session: Session) -> None:
    from rtm.bench.resume import ResumePlan, ResumeResult, resume_main

    options = session.options
    burst = 20  # within the per-connection burst (40), so no send is rate-limited
    senders = max(1, math.ceil(options.resume_messages / burst))
    users = await session.population.ensure(2 + senders)
    resumer, watcher, *sending = users[: 2 + senders]
    [conversation] = await session.population.conversations([[resumer, watcher, *sending]], "group")
    plan = ResumePlan(
        consumer_url=ws(session.target.consumers[0]),
        producer_url=ws(session.target.producer),
        conversation=conversation,
        resumer_token=resumer.access_token,
        watcher_token=watcher.access_token,
        sender_tokens=tuple(u.access_token for u in sending),
        messages=options.resume_messages,
        rounds=options.resume_rounds,
        body_chars=options.body_chars,
    )
    group = ProcessGroup(session.display)
    group.on_progress = lambda p: session.display.status(f"resume: round {p[0].done}/{p[0].total}")
    try:
        group.spawn(resume_main, plan, name="resume-client")
        window = session.sampler.open(session.watch([Watched("loadgen", group.pids[0])]))
        result = await group.receive(0, ResumeResult, 60.0 * options.resume_rounds + 60)
        usage = session.sampler.close(window)
    finally:
        await group.stop()
        await session.quiesce()
    times = [r.resume_ms for r in result.rounds]
    reconnect = summarize(r.reconnect_ms for r in result.rounds)
    row = Row(
        scenario="resume",
        name="resume",
        shape=f"{options.resume_messages} missed messages, {len(times)} rounds",
        delivery=summarize(times),
        lost=sum(max(0, options.resume_messages - r.received) for r in result.rounds),
        duplicated=sum(max(0, r.received - options.resume_messages) for r in result.rounds),
        window_s=window.elapsed,
        usage=usage,
    )
    row.figures["resume_p50_ms"] = row.delivery.p50 if row.delivery else math.nan
    row.figures["resume_max_ms"] = row.delivery.max if row.delivery else math.nan
    row.notes.append(
        "delivery column: resume frame sent → `resumed` received, all missed messages before it"
    )
    if reconnect is not None:
        row.notes.append(f"reconnect (connect, auth, ready) p50 {reconnect.p50:.1f} ms")
    row.notes += result.problems
    if result.problems:
        row.passed = False
    session.add(row)
