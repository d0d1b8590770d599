"""`rtm verify` as an operator runs it: its help, its output and its exit status (0 clean,
1 problems, 2 cannot run), and how it finds the system."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from nats.aio.client import Client as NatsClient

from rtm.cli import main
from rtm.consumer.settings import ConsumerSettings
from rtm.local.process import free_port
from tests.integration.consumer.continuity_support import lose_last, make_history


async def rtm(*argv: str) -> int:
    """`rtm <argv>` in a thread (the command runs its own event loop)."""
    return await asyncio.to_thread(main, list(argv))


def test_verify_help_explains_the_checks_and_the_exit_statuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["verify", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "exit status: 0 clean, 1 problems found (their ids are listed), 2 the check" in out
    for word in ("missing", "stored twice", "out of order", "pending", "resent"):
        assert word in out
    for option in ("--nats-url", "--database-url", "--data-dir", "--limit", "--json"):
        assert option in out


async def test_verify_exits_0_when_clean_and_1_listing_a_lost_message(
    consumer_settings: ConsumerSettings,
    nc: NatsClient,
    nats_url: str,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    history = await make_history(consumer_settings, nc, database_url)
    urls = ("--nats-url", nats_url, "--database-url", database_url)
    assert await rtm("verify", *urls) == 0
    clean = capsys.readouterr().out
    assert "20 messages checked" in clean
    assert "result: clean" in clean
    lost = await lose_last(database_url, history.conversations[0])
    assert await rtm("verify", *urls) == 1
    out = capsys.readouterr().out
    assert "problems: missing 1, stored twice 0, out of order 0" in out
    assert f"message_id {lost}" in out
    assert "result: 1 problems" in out
    assert "a secret body" not in out


async def test_verify_json_names_the_missing_message(
    consumer_settings: ConsumerSettings,
    nc: NatsClient,
    nats_url: str,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    history = await make_history(consumer_settings, nc, database_url)
    lost = await lose_last(database_url, history.conversations[1])
    code = await rtm("verify", "--nats-url", nats_url, "--database-url", database_url, "--json")
    document = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (document["clean"], document["problems"]) == (False, 1)
    assert [m["message_id"] for m in document["missing"]["items"]] == [str(lost)]


async def test_verify_cannot_run_without_its_servers_and_says_what_to_do(
    nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    database = f"postgresql://postgres:hunter2@{nowhere}/rtm"
    assert await rtm("verify", "--nats-url", f"nats://{nowhere}", "--database-url", database) == 2
    err = capsys.readouterr().err
    assert "cannot connect to NATS" in err
    assert "--nats-url" in err
    assert "hunter2" not in err
    assert await rtm("verify", "--nats-url", nats_url, "--database-url", database) == 2
    assert "cannot connect to PostgreSQL" in capsys.readouterr().err


async def test_verify_finds_the_running_rtm_up_through_its_status_file(
    consumer_settings: ConsumerSettings,
    nc: NatsClient,
    nats_url: str,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await make_history(consumer_settings, nc, database_url, count=4)
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("RTM_NATS_URL", "RTM_DATABASE_URL", "RTM_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "rtm-data"
    assert await rtm("verify", "--data-dir", str(data_dir)) == 2
    assert "no running `rtm up`" in capsys.readouterr().err
    data_dir.mkdir()
    status = {
        "runner_pid": os.getpid(),  # a live process: the status is trusted
        "urls": {"nats": nats_url, "database": database_url},
        "processes": {},
    }
    (data_dir / "status.json").write_text(json.dumps(status))
    assert await rtm("verify", "--data-dir", str(data_dir)) == 0
    assert "4 messages checked" in capsys.readouterr().out
