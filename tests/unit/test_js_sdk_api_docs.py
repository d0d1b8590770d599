"""The API documents the TypeScript SDK's types are generated from (clients/js/api/*.json) are
the ones the services build now: a protocol change that is not carried to the SDK fails here
(regenerate with scripts/gen_js_api.py, then rebuild the SDK, whose code must still compile)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sdk_api_documents_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_js_api.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
