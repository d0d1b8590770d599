"""`rtm dev`: which services a source change restarts."""

from __future__ import annotations

from pathlib import Path

from rtm.local.dev import affected_services, is_runner_code

PACKAGE = Path("/repo/src/rtm")
RUNNING = ["auth", "producer", "consumer-1", "consumer-2"]


def test_a_change_inside_one_service_restarts_only_that_service() -> None:
    assert affected_services([PACKAGE / "producer/services/send.py"], PACKAGE, RUNNING) == [
        "producer"
    ]


def test_a_consumer_change_restarts_every_consumer_instance() -> None:
    changed = [PACKAGE / "consumer/bootstrap.py"]
    assert affected_services(changed, PACKAGE, RUNNING) == ["consumer-1", "consumer-2"]


def test_a_shared_kernel_change_restarts_every_service() -> None:
    assert affected_services([PACKAGE / "shared/contract.py"], PACKAGE, RUNNING) == RUNNING


def test_files_outside_the_package_restart_nothing() -> None:
    assert affected_services([Path("/repo/tests/test_x.py")], PACKAGE, RUNNING) == []


def test_the_runners_own_code_is_recognised() -> None:
    assert is_runner_code(PACKAGE / "local/supervisor.py", PACKAGE)
    assert is_runner_code(PACKAGE / "cli.py", PACKAGE)
    assert not is_runner_code(PACKAGE / "auth/cli.py", PACKAGE)
    assert not is_runner_code(Path("/usr/local/x.py"), PACKAGE)
