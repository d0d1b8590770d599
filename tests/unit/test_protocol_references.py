"""Texts in src/ cite the protocol page users have, docs/protocol.md, by a section that exists
(issue 14: 46 texts cited "PROTOCOL.md §..", a file only the project's authors had)."""

from __future__ import annotations

import re

from rtm.shared.settings import REPO_ROOT

SOURCES = [
    path
    for path in (REPO_ROOT / "src" / "rtm").rglob("*")
    if path.suffix in {".py", ".pyi", ".proto"} and "__pycache__" not in path.parts
] + list((REPO_ROOT / "proto").rglob("*.proto"))
# `docs/protocol.md, "5. Producer"` or several: `docs/protocol.md, "5. Producer", "8. ..."`.
CITATION = re.compile(r"""docs/protocol\.md,\s+((?:["'][^"'\n]+["'](?:,\s+)?)+)""")
TITLE = re.compile(r"""["']([^"'\n]+)["']""")


def headings() -> list[str]:
    text = (REPO_ROOT / "docs" / "protocol.md").read_text()
    return [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]


def test_no_text_cites_protocol_md_by_its_old_name() -> None:
    citing = [str(p) for p in SOURCES if "PROTOCOL.md" in p.read_text()]
    assert citing == []


def test_every_cited_section_of_docs_protocol_md_exists() -> None:
    known = headings()
    cited = {
        title
        for path in SOURCES
        for match in CITATION.finditer(path.read_text())
        for title in TITLE.findall(match[1])
    }
    assert cited, "no citation found: the pattern is out of date"
    missing = sorted(t for t in cited if not any(h.startswith(t) for h in known))
    assert missing == []
