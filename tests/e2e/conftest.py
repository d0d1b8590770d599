"""The e2e tier: the whole system as real processes, started the way `rtm up` starts it.

One system per module (auth, producer, two consumers, embedded nats-server and PostgreSQL on free
ports), so the tests of a module share its start-up cost; each test makes its own users.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rtm.local.runner import LocalSystem
from rtm.local.settings import RunnerSettings


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSystem]:
    settings = RunnerSettings.for_tests(tmp_path_factory.mktemp("rtm-e2e"), consumers=2)
    with LocalSystem(settings, cleanup=True) as running:
        yield running
