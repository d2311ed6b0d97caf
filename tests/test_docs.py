"""README.md is a front page and docs/ holds the rest: every link resolves (files and #anchors), every
generated block is what its command writes now, and the pages the project promises exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = sorted((REPO / "docs").glob("*.md"))
DOCUMENTS = [REPO / "README.md", *PAGES, REPO / "benchmarks" / "README.md", REPO / "papermill_runs" / "README.md"]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (lower case, punctuation dropped, spaces to hyphens)."""
    anchors, in_code = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"^#{1,6} (.*)", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_resolves(document):
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)
    broken = []
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if re.match(r"^[a-z]+:", target):  # http(s), mailto: not checked offline
            continue
        path_part, _, anchor = target.partition("#")
        path = (document.parent / path_part).resolve() if path_part else document
        if not path.exists():
            broken.append(f"{target} (no file {path})")
        elif anchor and path.suffix == ".md" and anchor not in heading_anchors(path):
            broken.append(f"{target} (no heading #{anchor} in {path.name})")
    assert not broken, f"{document.name}: " + "; ".join(broken)


def test_the_readme_is_a_front_page_and_the_promised_pages_exist():
    assert len((REPO / "README.md").read_bytes()) < 12 * 1024
    promised = {"world", "backbones", "methods", "evaluation", "cost-and-performance", "claims-audit",
                "reliability", "data", "demo", "architecture"}
    assert promised <= {p.stem for p in PAGES}
    readme = (REPO / "README.md").read_text()
    assert "make study" in readme and "make test" in readme
    assert all(f"docs/{name}.md" in readme for name in promised)


def test_every_generated_block_is_current():
    from xlcore.docs import stale_blocks

    assert stale_blocks() == [], "run `python -m xlcore docs`"
