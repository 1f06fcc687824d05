"""Every relative link of README.md, docs/*.md, config.yaml and config/*.yaml leads to a file that exists (and,
for a Markdown `#anchor`, to a heading that exists): a reader following a link never lands on nothing."""

from __future__ import annotations

import re
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]

MARKDOWN_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
# In YAML comments and text: a repository path such as docs/cohort.md or config/paper.yaml.
REPO_PATH = re.compile(r"(?<![\w/.-])((?:docs|config|schemas|report|benchmarks)/[\w./-]+\.(?:md|ya?ml|rst|py))")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", markdown.read_text(), re.M)}


def _markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _yaml_files() -> list[Path]:
    return [REPO / "config.yaml", *sorted((REPO / "config").glob("*.yaml"))]


def broken_links() -> list[str]:
    """One line per broken link: file, line, link and what is wrong."""
    problems = []
    for page in _markdown_files():
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for target in MARKDOWN_LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                    continue
                path_part, _, anchor = target.partition("#")
                resolved = (page.parent / path_part).resolve() if path_part else page
                where = f"{page.relative_to(REPO)}:{number}: link ({target})"
                rel = resolved.relative_to(REPO).as_posix() if resolved.is_relative_to(REPO) else str(resolved)
                if not resolved.exists():
                    problems.append(f"{where}: {rel} does not exist")
                elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                    problems.append(f"{where}: {rel} has no heading with anchor #{anchor}")
    for config in _yaml_files():
        for number, line in enumerate(config.read_text().splitlines(), 1):
            for rel in REPO_PATH.findall(line):
                if not (REPO / rel).exists():
                    problems.append(f"{config.relative_to(REPO)}:{number}: refers to {rel}, which does not exist")
    return problems


def test_every_relative_link_in_readme_docs_and_config_resolves():
    problems = broken_links()
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_link_check_catches_a_broken_link(tmp_path, monkeypatch):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\nSee [b](b.md), [c](a.md#title) and [d](a.md#nowhere).\n")
    (tmp_path / "README.md").write_text("[ok](docs/a.md)\n")
    (tmp_path / "config.yaml").write_text("key: 1  # see docs/missing.md\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    problems = broken_links()
    assert len(problems) == 3, problems
    assert any("b.md does not exist" in p for p in problems)
    assert any("#nowhere" in p for p in problems)
    assert any("docs/missing.md" in p for p in problems)
