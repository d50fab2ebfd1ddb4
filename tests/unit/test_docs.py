"""User documentation: docs/configuration.md is exactly what `python -m tracehouse.docs` renders from the
option declarations (REGENERATE_SNAPSHOTS=true rewrites it; review the diff), no flag or setting lacks a
row, and every relative link of README.md and docs/*.md reaches an existing file and heading."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from tracehouse import docs
from tracehouse.options import Option

ROOT = Path(__file__).parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"
REGENERATE = os.environ.get("REGENERATE_SNAPSHOTS", "").lower() == "true"
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)


def test_the_configuration_reference_is_generated_from_the_code() -> None:
    text = docs.render()
    if REGENERATE:
        REFERENCE.write_text(text, encoding="utf-8")
    assert REFERENCE.exists(), "no docs/configuration.md: run with REGENERATE_SNAPSHOTS=true and review it"
    assert REFERENCE.read_text(encoding="utf-8") == text, (
        "docs/configuration.md is out of date: python -m tracehouse.docs --output docs/configuration.md"
    )


def test_every_command_flag_and_setting_has_a_row() -> None:
    assert docs.undocumented() == []
    flags = docs.parser_flags()
    assert {("serve",), ("collector",), ("query",), ("schema", "print"), ("schema", "apply"), ("demo",)} <= set(flags)
    text = REFERENCE.read_text(encoding="utf-8")
    for path, names in flags.items():
        for flag in names:
            assert f"`{flag}" in text, (path, flag)


def test_a_flag_without_a_row_stops_the_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    real = docs.sections()
    cut = tuple(replace(s, options=s.options[:-1]) if s.title == "tracehouse query" else s for s in real)
    monkeypatch.setattr(docs, "sections", lambda: cut)
    with pytest.raises(ValueError, match="tracehouse query --log-level: no row"):
        docs.render()
    monkeypatch.setattr(docs, "sections", lambda: real[1:])
    with pytest.raises(ValueError, match="tracehouse serve: no section"):
        docs.render()


def test_defaults_are_shown_as_a_reader_needs_them() -> None:
    assert docs._default(Option("--x", "", 256 * 1024 * 1024, int, "BYTES")) == "268,435,456 (256 MiB)"
    assert docs._default(Option("--x", "", 500_000, int, "N")) == "500,000"
    assert docs._default(Option("--x", "", 16686, int, "PORT")) == "16686"
    assert docs._default(Option("--x", "", None, str, "TOKEN")) == "none"
    assert docs._default(Option("--x", "", None, str, "DIR", "computed")) == "computed"
    assert docs._cell("chdb://<dir> `a|<b>`") == "chdb://&lt;dir&gt; `a\\|<b>`"


def test_the_generator_writes_and_checks_the_file(tmp_path: Path) -> None:
    target = tmp_path / "configuration.md"
    assert docs.main(["--check", str(target)]) == 1
    assert docs.main(["--output", str(target)]) == 0
    assert docs.main(["--check", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == docs.render()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_heading(page: Path) -> None:
    broken = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{target}: no file {destination}")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading #{anchor} in {destination.name}")
    assert broken == []


def test_the_link_checker_sees_links_and_headings(tmp_path: Path) -> None:
    text = "# A title\n## Été `x` & y\n## A title\n[a](b.md#x) ![i](img.png) `[n](no.md)`\n```\n# no\n[n](no.md)\n```\n"
    assert links(text) == ["b.md#x", "img.png"]
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    assert anchors(page) == {"a-title", "été-x--y", "a-title-1"}
    assert slug("tracehouse schema print | apply") == "tracehouse-schema-print--apply"


def links(markdown: str) -> list[str]:
    """Link targets outside fenced code blocks and code spans."""
    prose = re.sub(r"`[^`\n]*`", "", FENCE.sub("", markdown))
    return LINK.findall(prose)


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page (duplicates get -1, -2 ...)."""
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match[1])
        found.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.lower().replace("`", ""))
    return text.replace(" ", "-")
