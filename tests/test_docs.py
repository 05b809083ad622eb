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


def broken_links(text: str, folder: Path) -> list[str]:
    """The relative links in ``text`` (a page in ``folder``) that do not resolve to a file in the repository."""
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://|mailto:|#", target):
            continue
        path = (folder / target.split("#")[0]).resolve()
        if not path.exists() or ROOT not in path.parents:
            broken.append(target)
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_resolves_inside_the_repository(page):
    broken = broken_links(page.read_text(), page.parent)
    assert not broken, f"{page.name}: links that do not resolve inside the repository: {broken}"


def test_the_checker_sees_a_broken_link():
    text = ("see [the method](../shared/METHOD.md), [x](docs/nowhere.md#a), [ok](docs/method.md#1) and "
            "[w](https://x.org)")
    assert broken_links(text, ROOT) == ["../shared/METHOD.md", "docs/nowhere.md#a"]


def test_the_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert text.index("make demo") < text.index("make test") < 1500
    assert "pip install" in text and "hmlearn demo" in text
