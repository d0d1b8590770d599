"""The Python SDK (rtm.client) against the real system (issue 14, items 3 and 5).

One system for the module (auth, producer, two consumers, embedded NATS and PostgreSQL on free
ports, the producer's frame rate limit raised). Two tests:

- Alice sends 1,000 messages with `send()` and awaits the acks, Bob iterates `events()`; there
  is no retry, dedupe or resume code in the test: the SDK owns that. The producer is SIGKILLed
  a quarter of the way through the acks and the consumer instance both are connected to half
  way through Bob's deliveries. Every message must be acked and delivered to Bob exactly once,
  in the order sent, with a dense `seq`, and match history. Recovery figures are printed
  (`pytest -s`), never asserted.
- The `### Python` program of README.md's "Your first message", run as written (its URLs
  pointed at this system through the environment variables it reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rtm.client import (
    Ack,
    AckEvent,
    Client,
    ConnectionState,
    ConnectionStateEvent,
    FileStore,
    Message,
    MessageEvent,
    OutboxEntry,
    OutboxOptions,
    RtmError,
)
from rtm.local.runner import LocalSystem
from rtm.local.settings import RunnerSettings
from rtm.shared.settings import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

MESSAGES = 1000
# The producer's frame rate limit, raised from 20/s so that the outbox keeps its whole window
# (32 unacked sends) in flight: a kill then always lands on sends written but not acked.
RATE = 5000
KILL_PRODUCER_AT_ACK = MESSAGES // 4
KILL_CONSUMER_AT_DELIVERY = MESSAGES // 2


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    """The whole system with two consumers (like tests/e2e/conftest.py), rate limit raised."""
    settings = RunnerSettings.for_tests(
        tmp_path_factory.mktemp("rtm-pysdk"),
        consumers=2,
        service_env={"RTM_RATE_PER_SECOND": str(RATE), "RTM_RATE_BURST": str(RATE)},
    )
    with LocalSystem(settings, cleanup=True) as running:
        yield running


@dataclass
class Outages:
    """Socket outages a client saw: (socket, seconds from leaving `open` to `open` again)."""

    started: float
    down_since: dict[str, float] = field(default_factory=dict)
    seen: list[tuple[str, float]] = field(default_factory=list)

    def on_state(self, event: ConnectionStateEvent) -> None:
        now = time.monotonic()
        if event.state is ConnectionState.RECONNECTING:
            self.down_since.setdefault(event.socket, now)
            print(f"[{now - self.started:6.2f}s] {event.socket} down ({event.code})")
        elif event.state is ConnectionState.OPEN and event.socket in self.down_since:
            took = now - self.down_since.pop(event.socket)
            self.seen.append((event.socket, round(took, 3)))
            print(f"[{now - self.started:6.2f}s] {event.socket} open again after {took:.3f}s")


def _client(system: LocalSystem, store: FileStore | None = None) -> Client:
    urls = system.urls
    return Client(
        urls.auth,
        urls.producer,
        list(urls.consumers),  # the first is where both connect; reconnects rotate
        store=store,
        outbox=OutboxOptions(rate_per_second=RATE - 1000, rate_burst=RATE - 1000),
    )


async def _sign_up(client: Client, name: str) -> None:
    username, password = f"{name}_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await client.register(username, password)
    await client.login(username, password)


def _largest_gap(times: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


async def test_sdk_delivers_exactly_once_in_order_while_producer_and_consumer_are_killed(
    system: LocalSystem, tmp_path: Path
) -> None:
    """Clients are closed however the test ends (a failure leaves no socket open)."""
    started = time.monotonic()
    alice = _client(system, FileStore(tmp_path / "alice.json"))
    bob = _client(system)
    async with alice, bob:
        await _run_kill_test(system, alice, bob, started)


async def _run_kill_test(system: LocalSystem, alice: Client, bob: Client, started: float) -> None:
    await _sign_up(alice, "alice")
    await _sign_up(bob, "bob")
    await asyncio.gather(alice.connect(), bob.connect())
    chat = await alice.create_conversation([bob.user_id])
    alice_outages, bob_outages = Outages(started), Outages(started)
    killed: dict[str, float] = {}
    kills: list[asyncio.Task[None]] = []

    ready_again: dict[str, float] = {}

    async def kill_and_watch(name: str) -> None:
        """Kill, then note when the supervisor has it ready again: how much of an outage the
        server took, and how much the SDK's backoff added."""
        await asyncio.to_thread(system.kill, name)
        await asyncio.to_thread(system.wait_ready, [name], 30)
        ready_again[name] = round(time.monotonic() - started, 3)

    def kill(name: str) -> None:
        killed[name] = time.monotonic() - started
        print(f"[{killed[name]:6.2f}s] kill -9 {name} (pid {system.pid(name)})")
        kills.append(asyncio.create_task(kill_and_watch(name)))

    delivered: list[Message] = []
    delivered_at: list[float] = []
    all_delivered = asyncio.Event()

    async def bob_reads() -> None:
        async for event in bob.events():
            if isinstance(event, ConnectionStateEvent):
                bob_outages.on_state(event)
            elif isinstance(event, MessageEvent) and event.message.conversation_id == chat.id:
                delivered.append(event.message)
                delivered_at.append(time.monotonic())
                if len(delivered) >= MESSAGES:
                    all_delivered.set()
                if len(delivered) >= KILL_CONSUMER_AT_DELIVERY and "consumer-1" not in killed:
                    kill("consumer-1")

    async def alice_reads() -> None:
        async for event in alice.events():
            if isinstance(event, ConnectionStateEvent):
                alice_outages.on_state(event)

    acked_at: list[float] = []

    async def send(i: int) -> Ack:
        ack = await alice.send(chat.id, f"message {i}")
        acked_at.append(time.monotonic())
        if len(acked_at) >= KILL_PRODUCER_AT_ACK and "producer" not in killed:
            kill("producer")
        return ack

    readers = [asyncio.create_task(bob_reads()), asyncio.create_task(alice_reads())]
    acks = await asyncio.wait_for(asyncio.gather(*(send(i) for i in range(MESSAGES))), 45)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_delivered.wait(), 30)
    await asyncio.sleep(0.5)  # anything extra (a duplicate) would arrive now
    await asyncio.gather(*kills)
    stored = [m async for page in bob.older_pages(chat.id, limit=200) for m in page]
    stored.sort(key=lambda m: m.seq)
    resent, dropped = alice.resent, bob.duplicates_dropped
    await alice.close()
    await bob.close()
    await asyncio.gather(*readers)

    print(f"\nkilled at (s): { {k: round(v, 3) for k, v in killed.items()} }")
    print(f"ready again at (s): {ready_again}")
    print(f"alice's outages (socket, s): {alice_outages.seen}")
    print(f"bob's outages (socket, s): {bob_outages.seen}")
    print(
        f"resent by the SDK: {resent}, duplicate acks: {sum(a.duplicate for a in acks)}, "
        f"duplicates dropped by Bob's SDK: {dropped}, "
        f"largest ack gap: {_largest_gap(acked_at):.3f}s, "
        f"largest delivery gap: {_largest_gap(delivered_at):.3f}s, "
        f"elapsed: {time.monotonic() - started:.2f}s"
    )
    assert set(killed) == {"producer", "consumer-1"}, "both kills happened mid-conversation"
    assert len({a.message_id for a in acks}) == MESSAGES, "a resend created a second message"
    assert [a.seq for a in acks] == list(range(1, MESSAGES + 1)), "acks carry the dense seq"
    assert [m.body for m in delivered] == [f"message {i}" for i in range(MESSAGES)]
    assert [m.seq for m in delivered] == list(range(1, MESSAGES + 1))
    assert [m.message_id for m in stored] == [m.message_id for m in delivered]
    assert [m.message_id for m in delivered] == [a.message_id for a in acks]
    assert any(s == "producer" for s, _ in alice_outages.seen), "the producer kill was seen"
    assert any(s == "consumer" for s, _ in bob_outages.seen), "the consumer kill was seen"
    assert alice.pending() == []


def _readme_python_block() -> str:
    """The code block of README.md's `### Python` under `## Your first message`."""
    readme = (REPO_ROOT / "README.md").read_text("utf-8")
    section = readme.split("## Your first message", 1)[1].split("\n## ", 1)[0]
    python = section.split("### Python", 1)[1].split("\n### ", 1)[0]
    found = re.search(r"```python\n(.*?)```", python, re.DOTALL)
    assert found is not None, "README.md's ### Python has no ```python block"
    return found.group(1)


def test_readme_first_message_program_runs_as_written(system: LocalSystem) -> None:
    """The README's Python program, as written, sends "Hello!" and prints it received."""
    code = _readme_python_block()
    for default in ("8080", "8081", "8082"):
        assert f"127.0.0.1:{default}" in code, "the program shows make run's default URLs"
    urls = system.urls
    env = {
        **os.environ,
        "RTM_AUTH_URL": urls.auth,
        "RTM_PRODUCER_URL": urls.producer,
        "RTM_CONSUMER_URL": urls.consumer,
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    print(done.stdout, done.stderr)
    assert done.returncode == 0, done.stderr
    assert "Hello!" in done.stdout


async def test_sdk_refreshes_in_band_and_stops_for_good_when_the_session_is_revoked(
    system: LocalSystem,
) -> None:
    """A refresh re-authenticates both open sockets (no reconnect); reusing the rotated refresh
    token revokes the session, its sockets close 4503, and the SDK does not reconnect."""
    async with _client(system) as alice, _client(system) as bob:
        await _sign_up(alice, "alice")
        await _sign_up(bob, "bob")
        await asyncio.gather(alice.connect(), bob.connect())
        chat = await bob.create_conversation([alice.user_id])
        spent = alice.tokens.refresh_token
        assert spent is not None
        fresh = await alice.refresh_tokens()
        assert fresh.refresh_token != spent
        await bob.send(chat.id, "after the refresh")
        await alice.send(chat.id, "sent after the refresh")
        seen: list[object] = []
        async for event in alice.events():
            seen.append(event)
            if isinstance(event, MessageEvent) and event.message.body == "sent after the refresh":
                break
        states = [e for e in seen if isinstance(e, ConnectionStateEvent)]
        assert [e.state for e in states] == [ConnectionState.CONNECTING] * 2 + [
            ConnectionState.OPEN
        ] * 2, "the refresh reconnected a socket"
        bodies = [e.message.body for e in seen if isinstance(e, MessageEvent)]
        assert bodies == ["after the refresh", "sent after the refresh"]

        with pytest.raises(RtmError) as reused:
            await alice.resume_session(spent)  # a spent token: the whole session is revoked
        assert reused.value.status == 401
        failed: dict[str, int | None] = {}
        async with asyncio.timeout(15):
            async for event in alice.events():
                if isinstance(event, ConnectionStateEvent):
                    assert event.state is ConnectionState.FAILED, event
                    failed[event.socket] = event.code
                    if len(failed) == 2:
                        break
        assert failed == {"producer": 4503, "consumer": 4503}
        await asyncio.sleep(0.5)
        assert alice.states == {
            "producer": ConnectionState.FAILED,
            "consumer": ConnectionState.FAILED,
        }


async def test_a_restarted_process_resends_what_its_file_store_kept(
    system: LocalSystem, tmp_path: Path
) -> None:
    """A process stored a send in its FileStore and died before writing it: the next process
    over the same file sends it, once, and reports its ack (nobody awaits it any more)."""
    path = tmp_path / "alice.json"
    async with _client(system) as bob:
        first = _client(system, FileStore(path))
        await _sign_up(first, "alice")
        await _sign_up(bob, "bob")
        chat = await first.create_conversation([bob.user_id])
        refresh_token = first.tokens.refresh_token
        assert refresh_token is not None
        await FileStore(path).put_outbox(
            first.user_id, OutboxEntry(str(uuid.uuid4()), chat.id, "kept across the restart", 1)
        )
        await first.close()  # never connected: the process "died" with the send in its file

        async with _client(system, FileStore(path)) as second:
            await second.resume_session(refresh_token)
            await bob.connect()
            await second.connect()
            acked: AckEvent | None = None
            async with asyncio.timeout(15):
                async for event in second.events():
                    if isinstance(event, AckEvent):
                        acked = event
                        break
            assert acked is not None
            assert acked.body == "kept across the restart"
            assert acked.ack.seq == 1
            assert second.pending() == []
        page = await bob.history(chat.id)
        assert [m.body for m in page.messages] == ["kept across the restart"]


async def _bodies(client: Client, conversation_id: str, last: str) -> list[str]:
    """The bodies of `conversation_id`'s message events, up to the one saying `last`."""
    bodies: list[str] = []
    async with asyncio.timeout(15):
        async for event in client.events():
            if isinstance(event, MessageEvent) and event.message.conversation_id == conversation_id:
                bodies.append(event.message.body)
                if event.message.body == last:
                    return bodies
    return bodies


async def test_a_conversation_created_while_the_process_was_down_is_delivered_from_seq_1(
    system: LocalSystem, tmp_path: Path
) -> None:
    """Bob's process ran (a FileStore), then ended. Meanwhile Alice creates a group with him
    and sends 2 messages: the `conversation` event went to no socket, and the next process has
    no cursor for it. After it connects, Alice sends a third; Bob gets all three, in order."""
    path = tmp_path / "bob.json"
    async with _client(system) as alice:
        first = _client(system, FileStore(path))
        await _sign_up(alice, "alice")
        await _sign_up(first, "bob")
        bob_id = first.user_id
        await first.connect()
        await asyncio.sleep(0.5)  # it ran for a while (it listed its conversations)
        refresh_token = first.tokens.refresh_token
        assert refresh_token is not None
        await first.close()

        await alice.connect()
        group = await alice.create_conversation(
            [bob_id], kind="group", title="made while Bob was away"
        )
        for body in ("one", "two"):
            await alice.send(group.id, body)
        async with _client(system, FileStore(path)) as bob:
            await bob.resume_session(refresh_token)
            await bob.connect()
            await alice.send(group.id, "three")
            assert await _bodies(bob, group.id, "three") == ["one", "two", "three"]
