"""The repository stands alone: nothing reads files from outside the clone, and every
document a docstring or comment cites ships in `docs/` with the cited section.

The forbidden strings are assembled from pieces so that this file does not match them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("conduyt_bridge", "tests", "bench", "scripts")
TEXT_SUFFIXES = {".py", ".md", ".json", ".toml", ".txt", ".sh", ".cfg", ".ini", ".yml", ".yaml"}

OUTSIDE_REFERENCES = (
    ".." + "/" + "shared",
    "parents[1]" + "." + "parent",
    "/" + "shared" + "/" + "protocol",
)
"""Ways the code once reached the reference material checked out beside the clone."""

UNSHIPPED_DOCS = tuple(
    name + ".md" for name in ("DESIGN", "CONDUYT" + "-PROTOCOL", "LIB" + "RARIES")
)
"""Reference documents that are not part of the repository (their facts are in docs/)."""

CITATION = re.compile(
    "docs" + r"/([\w.-]+\.md)`?"  # the cited file
    r"((?:[ \t]*(?:,|and)?[ \t]*(?:§\d+(?:\.\d+)*|Q\d+)\b)*)"  # its sections / quirks
)
SECTION = re.compile(r"§(\d+(?:\.\d+)*)")
QUIRK = re.compile(r"\bQ(\d+)\b")


def _files(*tops: str) -> list[Path]:
    out: list[Path] = []
    for top in tops:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
                out.append(path)
    return out


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _headings(doc: Path) -> set[str]:
    """Section numbers of `doc`'s headings: `## 5. Enumerations` → `5`, `### 5.5 …` → `5.5`."""
    found = re.findall(r"^#{1,6}[ \t]+(\d+(?:\.\d+)*)\.?[ \t]", _read(doc), flags=re.MULTILINE)
    return set(found)


def _quirks(doc: Path) -> set[str]:
    return set(re.findall(r"\*\*Q(\d+)\b", _read(doc)))


def test_scanned_trees_exist() -> None:
    # A typo in SCANNED would make the other tests pass vacuously.
    assert all((ROOT / top).is_dir() for top in SCANNED)
    assert len(_files(*SCANNED)) > 50


@pytest.mark.parametrize("needle", OUTSIDE_REFERENCES)
def test_nothing_reads_outside_the_clone(needle: str) -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _files(*SCANNED)
        for number, line in enumerate(_read(path).splitlines(), 1)
        if needle in line
    ]
    assert hits == [], f"{needle!r} found:\n" + "\n".join(hits)


@pytest.mark.parametrize("name", UNSHIPPED_DOCS)
def test_no_citation_of_unshipped_documents(name: str) -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _files(*SCANNED)
        for number, line in enumerate(_read(path).splitlines(), 1)
        if name in line
    ]
    assert hits == [], f"{name} is not in the repository; cite docs/ instead:\n" + "\n".join(hits)


def _citations() -> list[tuple[str, str, str]]:
    """(where, cited file, cited sections text) for every docs citation in the code."""
    out: list[tuple[str, str, str]] = []
    for path in _files(*SCANNED):
        # Join wrapped lines so a citation split across two docstring lines is still seen.
        text = re.sub(r"\n[ \t]*(?:#[ \t]*)?", " ", _read(path))
        for match in CITATION.finditer(text):
            out.append((str(path.relative_to(ROOT)), match.group(1), match.group(2)))
    return out


def test_the_code_cites_docs() -> None:
    cited = {name for _, name, _ in _citations()}
    assert {"architecture.md", "topics.md", "protocol.md", "libraries.md"} <= cited


def test_every_cited_doc_and_section_exists() -> None:
    problems: list[str] = []
    for where, name, sections in _citations():
        doc = ROOT / "docs" / name
        if not doc.is_file():
            problems.append(f"{where}: cites docs/{name}, which does not exist")
            continue
        headings = _headings(doc)
        for number in SECTION.findall(sections):
            if number not in headings:
                problems.append(f"{where}: cites docs/{name} §{number}: no such heading")
        quirks = _quirks(doc)
        for number in QUIRK.findall(sections):
            if number not in quirks:
                problems.append(f"{where}: cites docs/{name} Q{number}: no such quirk")
    assert problems == [], "\n".join(problems)


def test_citation_checker_catches_a_missing_section(tmp_path: Path) -> None:
    # The checker itself: a heading that exists passes, one that does not is found.
    doc = tmp_path / "x.md"
    doc.write_text("# Title\n\n## 3. Framing\n\n### 3.1 COBS\n\n- **Q6 Slots.** leak\n")
    assert _headings(doc) == {"3", "3.1"}
    assert _quirks(doc) == {"6"}
    text = "see `" + "docs" + "/x.md` §3.1, §4 and Q6 for why"
    match = CITATION.search(text)
    assert match is not None
    assert match.group(1) == "x.md"
    assert SECTION.findall(match.group(2)) == ["3.1", "4"]
    assert QUIRK.findall(match.group(2)) == ["6"]
