"""PostgreSQL starts from a copy of its binaries when the install is not reachable by the
unprivileged user (a clone under a private folder, as CI's `mktemp -d` is)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

import rtm.local.postgres as embedded
from rtm.local.process import free_port, is_root


@pytest.mark.skipif(not is_root(), reason="the copy is only made when running as root")
def test_the_copied_binaries_find_their_shared_libraries(tmp_path: Path) -> None:
    """Binaries under site-packages taken as unreachable are copied, and the copy runs."""

    def site_packages_unreachable(path: Path, uid: int, gid: int) -> bool:
        return "site-packages" not in str(path) and embedded.reachable_by(path, uid, gid)

    server = embedded.EmbeddedPostgres(
        tmp_path / "pg", free_port(), reachable=site_packages_unreachable
    )
    try:
        server.start()
        assert str(embedded.REACHABLE_BASE) in str(server.argv()[0])
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
        server.remove_data()
