"""The shipped list of common and breached passwords that registration refuses (adapter: it reads
package data; the rule itself is `rtm.auth.domain.model.validate_password`).

`data/common-passwords.txt.xz` holds ~200,000 lower-cased passwords of 8 bytes or more, sorted,
one a line (~600 KB); `data/README.md` says where they come from and under which license, and
`scripts/build_common_passwords.py` regenerates the file. Loaded once per process (~0.2 s, ~20 MB)
into a frozenset, so a check is one hash lookup.
"""

from __future__ import annotations

import functools
import lzma
from importlib import resources

DATA_FILE = "common-passwords.txt.xz"


@functools.cache
def common_passwords() -> frozenset[str]:
    """Every entry of the shipped list (lower-case)."""
    raw = resources.files("rtm.auth").joinpath("data", DATA_FILE).read_bytes()
    return frozenset(lzma.decompress(raw).decode("utf-8").split("\n")) - {""}
