"""Rewrite the generated tables in README.md and docs/*.md from the commands that produce them.

    python bench/readme_tables.py

Each table sits under a marker comment naming its command; tests check they are current. The
benchmark tables come from ``hmlearn report bench/results/<name> --format md`` over the results
stores the sweeps ``configs/reproduce.yaml``, ``configs/reproduce-fast.yaml``,
``configs/rare-nodes.yaml``, ``configs/focal-ablation.yaml`` and ``configs/ensembles.yaml`` write
(``hmlearn sweep configs/<name>.yaml --runs bench/results/<name>``).
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


ABLATION_DECAY_0 = "weights (decay 0)"
ABLATION_TWO_HEADS = "weights, 2 heads (decay 0)"
ABLATION_FOCAL = "weights + focal (decay 0) (focal=predictive, heads=2)"
ABLATION_COMPARISONS = (
    # focal weighting at equal effective decay, against the same two heads without it, then as the paper
    # compares it (against one network); then with AdamW's decoupled decay on both sides
    (ABLATION_FOCAL, ABLATION_TWO_HEADS),
    ("weights + focal (decay 0) (focal=gated, heads=2)", ABLATION_TWO_HEADS),
    (ABLATION_TWO_HEADS, ABLATION_DECAY_0),
    (ABLATION_FOCAL, ABLATION_DECAY_0),
    ("weights + focal (decay 0) (focal=gated, heads=2)", ABLATION_DECAY_0),
    ("weights + focal (AdamW) (focal=predictive, heads=2)", "weights (AdamW)"),
    ("weights + focal (AdamW) (focal=gated, heads=2)", "weights (AdamW)"),
    # the published pair, and its parts: decay switched off, then the rest
    ("published (summed loss, coupled decay)", "weights (coupled decay)"),
    (ABLATION_DECAY_0, "weights (coupled decay)"),
    ("published (summed loss, coupled decay)", ABLATION_FOCAL),
)
ABLATION_ARGS = ["--baseline", ABLATION_DECAY_0, "--metric", "au_prc,recall,f1,recall_rare",
                 *[arg for pair in ABLATION_COMPARISONS for arg in ("--compare", *pair)]]
"""``hmlearn report bench/results/focal-ablation`` with these arguments gives the ablation's tables."""
ENSEMBLE_COMPARISONS = (
    ("ensemble, per-head loss (heads=8)", "ensemble, per-head loss (heads=4)"),
    ("ensemble, per-head loss (heads=8)", "C-HMCNN"),
    ("ensemble, per-head loss (heads=4)", "ensemble (heads=4)"),
    ("ensemble, per-head loss (heads=4)", "C-HMCNN"),
    ("ensemble, per-head loss (heads=2)", "ensemble (heads=2)"),
    ("ensemble, per-head loss (heads=2)", "C-HMCNN"),
)
ENSEMBLE_ARGS = ["--metric", "au_prc", *[arg for pair in ENSEMBLE_COMPARISONS for arg in ("--compare", *pair)]]
"""``hmlearn report bench/results/ensembles`` with these arguments gives the ensembles' tables."""


@functools.lru_cache(maxsize=None)
def report_markdown(name: str, *args: str) -> str:
    """The Markdown of ``hmlearn report bench/results/<name> --format md [args]`` (written to a temporary folder;
    kept, as the stores do not change while this runs)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "report.md"
        subprocess.run([sys.executable, "-m", "hmlearn.cli", "report", str(ROOT / "bench" / "results" / name),
                        "--format", "md", "--out", str(out), *args], check=True, capture_output=True, text=True,
                       cwd=ROOT)
        return out.read_text()


def section(markdown: str, heading: str) -> str:
    """The body of the report's ``## heading`` section (captions and tables), stripped."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.MULTILINE | re.DOTALL)
    if not match:
        raise SystemExit(f"the report has no section {heading!r}")
    return match.group(1).strip()


def table(markdown: str, caption_start: str) -> str:
    """The table (its '|' lines) under the caption that starts with ``caption_start``."""
    match = re.search(rf"^\*{re.escape(caption_start)}[^\n]*\*\n\n((?:\|[^\n]*\n?)+)", markdown, re.MULTILINE)
    if not match:
        raise SystemExit(f"the report has no table with a caption starting {caption_start!r}")
    return match.group(1).strip()


def tables() -> dict[str, str]:
    """README marker -> the text that belongs under it."""
    datasets = subprocess.run(
        [sys.executable, "-m", "hmlearn.cli", "datasets", "list", "--format", "github", "--no-location"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    rare = report_markdown("rare-nodes")
    ablation = report_markdown("focal-ablation", *ABLATION_ARGS)
    ensembles = report_markdown("ensembles", *ENSEMBLE_ARGS)
    return {
        "focal-ablation-summary": table(section(ablation, "Summary"), "summary per method"),
        "focal-ablation-comparisons": table(section(ablation, "Paired comparisons"), "paired comparisons"),
        "focal-ablation-f1": table(section(ablation, "Results"), "F1"),
        "ensembles-table": table(ensembles, "AU(PRC)"),
        "ensembles-comparisons": table(section(ensembles, "Paired comparisons"), "paired comparisons"),
        "datasets-table": datasets,
        "reproduction-table": table(report_markdown("reproduce"), "AU(PRC)"),
        "reproduction-table-fast": table(report_markdown("reproduce-fast"), "AU(PRC)"),
        "rare-nodes-table": table(section(rare, "Summary"), "summary per method"),
        "rare-nodes-per-dataset": section(rare, "Results"),
    }


def _span(text: str, marker: str) -> tuple[int, int]:
    """Where the generated text of ``marker`` lies in the README: after the marker line, up to the
    end marker ``<!-- /marker -->`` where there is one, else the table (lines starting with '|')."""
    found = re.compile(rf"<!-- {re.escape(marker)}:[^\n]*-->\n").search(text)
    if not found:
        raise SystemExit(f"README.md has no marker {marker!r}")
    end = re.compile(rf"\n?<!-- /{re.escape(marker)} -->").search(text, found.end())
    if end:
        return found.end(), end.start()
    return found.end(), re.compile(r"(?:\|[^\n]*\n|[A-Z_]+\n)*").match(text, found.end()).end()


def readme_block(text: str, marker: str) -> str:
    """The generated text under ``marker`` in the README ``text``, stripped."""
    start, end = _span(text, marker)
    return text[start:end].strip()


def replace_after(text: str, marker: str, block: str) -> str:
    """``text`` with the generated text under ``marker`` replaced by ``block``."""
    start, end = _span(text, marker)
    rest = text[end:]
    return text[:start] + block.strip() + "\n" + (rest.lstrip("\n") if rest.lstrip("\n").startswith("<!-- /") else rest)


def pages() -> list[Path]:
    """The files that may hold generated tables: README.md and the docs."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def page_of(marker: str) -> Path:
    """The one page that holds ``marker``."""
    holding = [page for page in pages() if f"<!-- {marker}:" in page.read_text()]
    if len(holding) != 1:
        raise SystemExit(f"marker {marker!r} is in {len(holding)} pages, not one")
    return holding[0]


def main() -> None:
    for marker, block in tables().items():
        page = page_of(marker)
        page.write_text(replace_after(page.read_text(), marker, block))
        print(f"{page.relative_to(ROOT)}: {marker} regenerated")


if __name__ == "__main__":
    main()
