""".env.example lists every setting of the code as it is (regenerate it when this fails)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_env_example.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_port_setting_is_listed() -> None:
    text = (ROOT / ".env.example").read_text()
    for name in (
        "RTM_AUTH_GRPC_PORT",
        "RTM_AUTH_HTTP_PORT",
        "RTM_PRODUCER_PORT",
        "RTM_CONSUMER_PORT",
        "RTM_NATS_URL",
        "RTM_DATABASE_URL",
    ):
        assert f"# {name}=" in text, name
