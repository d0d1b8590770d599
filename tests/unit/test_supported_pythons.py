"""The supported Pythons are written in several places, and they must say the same.

The Makefile's PYTHONS is the list `make test` runs the tiers on; pyproject.toml's requires-python
decides who can install rtm, its classifiers tell PyPI, the lock files must hold for every one of
them (one universal lock, resolved from the oldest), ruff and mypy check against the oldest (code
that type-checks there runs on the newer ones), and the README tells people. A new Python added
in one place only would be claimed but untested, or tested but not installable.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
CLASSIFIER = "Programming Language :: Python :: "


@dataclass(frozen=True)
class Sources:
    makefile: str
    pyproject: dict[str, Any]
    readme: str
    lock_headers: dict[str, str]


def read_sources() -> Sources:
    locks = ("requirements.lock", "requirements-dev.lock")
    return Sources(
        makefile=(ROOT / "Makefile").read_text(),
        pyproject=tomllib.loads((ROOT / "pyproject.toml").read_text()),
        readme=(ROOT / "README.md").read_text(),
        lock_headers={name: (ROOT / name).read_text()[:400] for name in locks},
    )


def said_in_readme(versions: list[str]) -> str:
    return f"Python {', '.join(versions[:-1])} or {versions[-1]}"


def disagreements(sources: Sources) -> list[str]:
    """Every place that does not say what the Makefile's PYTHONS says."""
    found = re.search(r"^PYTHONS := (.+)$", sources.makefile, re.MULTILINE)
    if found is None:
        return ["Makefile: no `PYTHONS := ...` line"]
    versions = found.group(1).split()
    oldest = versions[0]
    major, first_minor = (int(part) for part in oldest.split("."))
    last_minor = int(versions[-1].split(".")[1])
    problems = []
    if versions != [f"{major}.{minor}" for minor in range(first_minor, last_minor + 1)]:
        problems.append(f"Makefile: PYTHONS {versions} is not an ascending run of versions")

    project = sources.pyproject["project"]
    requires = SpecifierSet(project["requires-python"])
    admitted = [f"{major}.{minor}" for minor in range(first_minor - 1, last_minor + 2)]
    wrongly = [v for v in admitted if (f"{v}.0" in requires) != (v in versions)]
    if wrongly:
        problems.append(f"pyproject.toml: requires-python {requires} is wrong about {wrongly}")
    classified = sorted(
        c.removeprefix(CLASSIFIER)
        for c in project.get("classifiers", [])
        if re.fullmatch(re.escape(CLASSIFIER) + r"\d+\.\d+", c)
    )
    if classified != versions:
        problems.append(f"pyproject.toml: classifiers name {classified}, not {versions}")

    tools = sources.pyproject["tool"]
    if tools["ruff"]["target-version"] != "py" + oldest.replace(".", ""):
        problems.append(f"pyproject.toml: ruff's target-version is not the oldest, {oldest}")
    if tools["mypy"]["python_version"] != oldest:
        problems.append(f"pyproject.toml: mypy's python_version is not the oldest, {oldest}")

    for name, header in sources.lock_headers.items():
        if f"--universal --python-version {oldest} " not in header:
            problems.append(f"{name}: not compiled with --universal --python-version {oldest}")

    if said_in_readme(versions) not in sources.readme:
        problems.append(f"README.md: does not say {said_in_readme(versions)!r}")
    return problems


def test_every_place_names_the_makefiles_pythons() -> None:
    assert disagreements(read_sources()) == []


def test_a_python_added_in_one_place_only_is_found() -> None:
    sources = read_sources()
    added = re.sub(
        r"^PYTHONS := (.+)$", r"PYTHONS := \1 3.14", sources.makefile, flags=re.MULTILINE
    )
    assert disagreements(replace(sources, makefile=added)) == [
        "pyproject.toml: requires-python <3.14,>=3.11 is wrong about ['3.14']",
        "pyproject.toml: classifiers name ['3.11', '3.12', '3.13'], "
        "not ['3.11', '3.12', '3.13', '3.14']",
        "README.md: does not say 'Python 3.11, 3.12, 3.13 or 3.14'",
    ]


def test_a_gap_in_the_pythons_is_found() -> None:
    sources = read_sources()
    gap = re.sub(r"^PYTHONS := .+$", "PYTHONS := 3.11 3.13", sources.makefile, flags=re.MULTILINE)
    assert disagreements(replace(sources, makefile=gap))[0] == (
        "Makefile: PYTHONS ['3.11', '3.13'] is not an ascending run of versions"
    )


def test_a_narrower_requires_python_or_a_per_version_lock_is_found() -> None:
    sources = read_sources()
    pyproject = {
        **sources.pyproject,
        "project": {**sources.pyproject["project"], "requires-python": ">=3.11,<3.13"},
    }
    headers = {
        name: header.replace("--universal ", "") for name, header in sources.lock_headers.items()
    }
    assert disagreements(replace(sources, pyproject=pyproject, lock_headers=headers)) == [
        "pyproject.toml: requires-python <3.13,>=3.11 is wrong about ['3.13']",
        "requirements.lock: not compiled with --universal --python-version 3.11",
        "requirements-dev.lock: not compiled with --universal --python-version 3.11",
    ]
