"""The README starts short and every link in it and in docs/ resolves inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_the_readme_is_at_most_12_5_kb():
    assert (ROOT / "README.md").stat().st_size <= 12_500


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_resolves_inside_the_repository(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://|mailto:|#", target):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists() or ROOT not in path.parents:
            broken.append(target)
    assert not broken, f"{page.name}: links that do not resolve inside the repository: {broken}"


def test_the_checker_sees_a_broken_link(tmp_path):
    assert LINK.findall("see [the method](../shared/METHOD.md) and [x](docs/x.md#a)") == ["../shared/METHOD.md",
                                                                                           "docs/x.md#a"]


def test_the_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert text.index("make demo") < text.index("make test") < 1500
    assert "pip install" in text and "hmlearn demo" in text
