"""PostgreSQL starts from a copy of its binaries when the install is not reachable by the
unprivileged user (a clone under a private folder, as CI's `mktemp -d` is)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

import rtm.local.postgres as embedded
from rtm.local.process import free_port, is_root


@pytest.mark.skipif(not is_root(), reason="the copy is only made when running as root")
def test_the_copied_binaries_find_their_shared_libraries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reachable = embedded._reachable_by

    def site_packages_unreachable(path: Path, uid: int, gid: int) -> bool:
        return "site-packages" not in str(path) and reachable(path, uid, gid)

    monkeypatch.setattr(embedded, "_reachable_by", site_packages_unreachable)
    server = embedded.EmbeddedPostgres(tmp_path / "pg", free_port())
    try:
        server.start()
        assert str(embedded.REACHABLE_BASE) in str(server.argv()[0])
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
        server.remove_data()
