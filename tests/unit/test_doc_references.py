"""Every citation of a document section in the code names a section that exists.

The code cites Berth's own docs in two forms: ``docs/DESIGN.md §N`` (a numbered section of
``docs/DESIGN.md``) and ``ARCHITECTURE.md, "Heading"`` (a heading of a page in ``docs/``, the
quoted text being the heading or its start). A citation whose section was renamed or never
existed fails here, with the file and line of the citation.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CODE_DIRS = ("libs", "services", "src", "tests", "bench", "deploy", "scripts")
DESIGN_CITATION = re.compile(r"DESIGN(?:\.md)?((?:,? ?§\d+[a-z]?)+)")
SECTION_NUMBER = re.compile(r"§(\d+[a-z]?)")
HEADING_CITATION = re.compile(
    r"\b([A-Z]+)\.md[,:]?\s+[\"“]([^\"”\n]+)[\"”]?",
)


def _headings(page: Path) -> list[str]:
    """The text of every markdown heading of ``page`` (``#`` marks and backticks stripped)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    return [line.lstrip("#").strip().replace("`", "") for line in lines if line.startswith("#")]


def _design_sections() -> set[str]:
    """The section numbers of docs/DESIGN.md: ``## 2. Events …`` gives ``"2"``."""
    numbers = set()
    for heading in _headings(DOCS / "DESIGN.md"):
        match = re.match(r"(\d+[a-z]?)\.", heading)
        if match:
            numbers.add(match.group(1))
    return numbers


def _code_lines() -> list[tuple[str, int, str]]:
    """(path relative to the repository, line number, text) of every source line that may cite."""
    found = []
    for folder in CODE_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in {".py", ".sh", ".yaml", ".toml"} and path.parent.name != "scripts":
                continue
            if not path.is_file() or ".venv" in path.parts or "node_modules" in path.parts:
                continue
            if path == Path(__file__).resolve():  # its docstring shows the pattern
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), 1):
                found.append((str(path.relative_to(ROOT)), number, line))
    return found


def test_design_has_numbered_sections() -> None:
    assert {"1", "2", "3", "4", "5", "6"} <= _design_sections()


def test_every_design_citation_names_an_existing_section() -> None:
    sections = _design_sections()
    broken = []
    cited = 0
    for where, number, line in _code_lines():
        for match in DESIGN_CITATION.finditer(line):
            for section in SECTION_NUMBER.findall(match.group(1)):
                cited += 1
                if section not in sections:
                    broken.append(f"{where}:{number}: §{section}")
    assert cited > 30, "the citation pattern no longer finds the code's citations"
    assert broken == []


def test_every_heading_citation_names_an_existing_heading() -> None:
    broken = []
    cited = 0
    for where, number, line in _code_lines():
        for page_name, quoted in HEADING_CITATION.findall(line):
            page = DOCS / f"{page_name}.md"
            if not page.exists():
                broken.append(f"{where}:{number}: no docs/{page_name}.md")
                continue
            cited += 1
            start = quoted.strip().rstrip(",.;").replace("`", "")
            if not any(heading.startswith(start) for heading in _headings(page)):
                broken.append(f'{where}:{number}: {page_name}.md has no heading "{start}"')
    assert cited > 20, "the citation pattern no longer finds the code's citations"
    assert broken == []


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_design_citations_in_docs_resolve(page: str) -> None:
    sections = _design_sections()
    text = (DOCS / page).read_text(encoding="utf-8")
    cited = [s for m in DESIGN_CITATION.finditer(text) for s in SECTION_NUMBER.findall(m.group(1))]
    assert [s for s in cited if s not in sections] == []
