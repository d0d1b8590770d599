"""The TypeScript SDK (clients/js) against the real system while its producer and a consumer are
killed (issue 14, items 2 and 5).

`clients/js/e2e/kill-recovery.mjs` is an application with no reliability code of its own: Alice
calls `send()` 2,000 times and awaits the acks, Bob listens for `message`. This test starts the
system (auth, producer, two consumers, embedded NATS and PostgreSQL on free ports), runs the
script with node, and on its progress lines SIGKILLs the producer (by PID, a quarter of the way
through the acks) and the consumer instance both clients are connected to (half-way through the
deliveries). Every message must be acked and delivered to Bob exactly once, in the order sent,
with a dense `seq`, and match what history (PostgreSQL) holds. Recovery figures are printed
(`pytest -s`), never asserted.

It also runs the JavaScript program of README.md's "Your first message" as written there, with
the default URLs replaced by the test system's, and checks that it prints what README.md says.

Needs node ≥ 20 and npm: builds the SDK (`npm ci`, `npm run build`) when `dist/` is missing or
older than its sources; skipped where node is not installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rtm.local.runner import LocalSystem
from rtm.local.settings import RunnerSettings
from rtm.shared.settings import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

JS = REPO_ROOT / "clients" / "js"
SCRIPT = JS / "e2e" / "kill-recovery.mjs"
REFRESH_SCRIPT = JS / "e2e" / "refresh-and-revoke.mjs"
README = REPO_ROOT / "README.md"
# The URLs `make run` serves by default, as README.md's first-message program names them.
README_AUTH, README_PRODUCER, README_CONSUMER = (
    "http://127.0.0.1:8080",
    "http://127.0.0.1:8081",
    "http://127.0.0.1:8082",
)
MESSAGES = 2000
# The producer's frame rate limit, raised from 20/s so that the outbox keeps its whole window
# (32 unacked sends) in flight: a kill then always lands on sends written but not acked.
RATE = 5000
KILL_PRODUCER_AT_ACK = MESSAGES // 4
KILL_CONSUMER_AT_DELIVERY = MESSAGES // 2


def _newest(paths: list[Path]) -> float:
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    """The whole system with two consumers (like tests/e2e/conftest.py), rate limit raised."""
    settings = RunnerSettings.for_tests(
        tmp_path_factory.mktemp("rtm-js"),
        consumers=2,
        service_env={"RTM_RATE_PER_SECOND": str(RATE), "RTM_RATE_BURST": str(RATE)},
    )
    with LocalSystem(settings, cleanup=True) as running:
        yield running


@pytest.fixture(scope="module")
def node() -> str:
    """node, with the SDK built from the lockfile (what `make js-test` does first)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to test the TypeScript SDK")
    if not (JS / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True)
    sources = [*JS.glob("src/*.ts"), *JS.glob("api/*.json"), JS / "package-lock.json"]
    if _newest([JS / "dist" / "index.js"]) < _newest(sources):
        subprocess.run([npm, "run", "build"], cwd=JS, check=True)
    return node


class _ReadyWatch(threading.Thread):
    """When a killed process is ready again (restarted by the supervisor), in seconds since
    `started`: how much of an outage the server took, and how much the SDK's backoff added."""

    def __init__(self, system: LocalSystem, name: str, started: float) -> None:
        super().__init__(daemon=True)
        self.system, self.name, self.started = system, name, started
        self.ready_at: float | None = None

    def run(self) -> None:
        self.system.wait_ready([self.name], timeout=30)
        self.ready_at = round(time.monotonic() - self.started, 2)


def _when_ready(system: LocalSystem, name: str, started: float) -> _ReadyWatch:
    watch = _ReadyWatch(system, name, started)
    watch.start()
    return watch


def test_sdk_delivers_exactly_once_in_order_while_producer_and_consumer_are_killed(
    system: LocalSystem, node: str
) -> None:
    urls = system.urls
    env = {
        **os.environ,
        "RTM_JS_AUTH_URL": urls.auth,
        "RTM_JS_PRODUCER_URL": urls.producer,
        "RTM_JS_CONSUMER_URLS": ",".join(urls.consumers),
        "RTM_JS_MESSAGES": str(MESSAGES),
        "RTM_JS_RATE": str(RATE - 1000),
    }
    killed: dict[str, float] = {}
    back: list[_ReadyWatch] = []
    result: dict[str, Any] | None = None
    started = time.monotonic()
    with subprocess.Popen(
        [node, str(SCRIPT)], cwd=JS, env=env, stdout=subprocess.PIPE, text=True
    ) as script:
        assert script.stdout is not None
        for line in script.stdout:
            event = json.loads(line)
            if "state" in event:
                print(f"[sdk] {line.strip()}")
            if "result" in event:
                result = event["result"]
            elif event.get("acked", 0) >= KILL_PRODUCER_AT_ACK and "producer" not in killed:
                killed["producer"] = time.monotonic() - started
                print(f"[test] kill -9 producer (pid {system.pid('producer')}) at {line.strip()}")
                system.kill("producer")
                back.append(_when_ready(system, "producer", started))
            elif (
                event.get("delivered", 0) >= KILL_CONSUMER_AT_DELIVERY and "consumer" not in killed
            ):
                killed["consumer"] = time.monotonic() - started
                print(
                    f"[test] kill -9 consumer-1 (pid {system.pid('consumer-1')}) at {line.strip()}"
                )
                system.kill("consumer-1")  # the first URL: where both clients are connected
                back.append(_when_ready(system, "consumer-1", started))
        assert script.wait(timeout=30) == 0, "the script failed (its error is above)"

    for thread in back:
        thread.join(timeout=30)
    assert result is not None, "the script printed no result"
    print(f"\nkilled at (s since the script started): {killed}")
    print(f"ready again at: { {watch.name: watch.ready_at for watch in back} }")
    print(f"result: {json.dumps(result)}")
    assert set(killed) == {"producer", "consumer"}, "both kills happened mid-conversation"
    assert result["acked"] == MESSAGES
    assert result["distinct_message_ids"] == MESSAGES, "a resend created a second message"
    assert result["delivered"] == MESSAGES, "every message reached Bob"
    assert result["duplicates_delivered"] == 0
    assert result["in_order"], "Bob got them in the order Alice sent them"
    assert result["seqs_dense"]
    assert result["stored"] == MESSAGES
    assert result["stored_matches_delivered"], "history (PostgreSQL) holds what Bob got"
    assert result["ack_seqs_match_delivered"], "each ack (wait stored) has the seq Bob got"
    sockets = {(o["who"], o["socket"]) for o in result["outages"]}
    assert ("alice", "producer") in sockets, "the producer kill was seen and recovered from"
    assert ("bob", "consumer") in sockets, "the consumer kill was seen and recovered from"


def test_sdk_refreshes_in_band_and_stops_for_good_when_the_session_is_revoked(
    system: LocalSystem, node: str
) -> None:
    """A refresh re-authenticates both open sockets (no reconnect); reusing the rotated refresh
    token revokes the session, its sockets close 4503, and the SDK does not reconnect."""
    urls = system.urls
    env = {
        **os.environ,
        "RTM_JS_AUTH_URL": urls.auth,
        "RTM_JS_PRODUCER_URL": urls.producer,
        "RTM_JS_CONSUMER_URLS": ",".join(urls.consumers),
    }
    done = subprocess.run(
        [node, str(REFRESH_SCRIPT)],
        cwd=JS,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])["result"]
    print(f"result: {json.dumps(result)}")
    assert result["rotated"]
    assert result["delivered"] == ["before the refresh", "after the refresh"]
    assert result["states_after_refresh"] == [], "the refresh reconnected a socket"
    assert result["reuse_status"] == 401
    assert sorted(result["states"]) == ["consumer:failed 4503", "producer:failed 4503"]


def _readme_js_first_message() -> tuple[str, str]:
    """The `js` code block of README.md's "Your first message", "JavaScript (Node)", and the
    line README.md says it prints (`It prints `...``)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Your first message\n", 1)[1].split("\n## ", 1)[0]
    javascript = section.split("\n### JavaScript (Node)\n", 1)[1].split("\n### ", 1)[0]
    code = re.search(r"^```js\n(.*?)^```$", javascript, re.DOTALL | re.MULTILINE)
    prints = re.search(r"It prints `([^`]+)`", javascript)
    assert code is not None, "README.md's JavaScript first message has no ```js block"
    assert prints is not None, "README.md no longer says what the program prints"
    return code.group(1), prints.group(1)


@pytest.mark.timeout(60)
def test_readme_first_message_in_javascript_runs_as_written(system: LocalSystem, node: str) -> None:
    """README.md's JavaScript program, run with node from clients/js as README.md says (the
    package imports itself by name there), prints the message as received."""
    code, expected = _readme_js_first_message()
    urls = system.urls
    for default, actual in (
        (README_AUTH, urls.auth),
        (README_PRODUCER, urls.producer),
        (README_CONSUMER, urls.consumers[0]),
    ):
        assert default in code, f"README.md's program no longer names {default}"
        code = code.replace(default, actual)
    done = subprocess.run(
        [node, "--input-type=module"],  # the program from stdin, resolved as if in clients/js
        input=code,
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )
    print(f"README program printed: {done.stdout.strip()!r}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected
