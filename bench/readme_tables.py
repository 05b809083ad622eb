"""Rewrite the generated tables in README.md from the commands that produce them.

    python bench/readme_tables.py

Each table sits under a marker comment naming its command; tests check they are current.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from rare_nodes import per_dataset, summary  # noqa: E402
from reproduce_chmcnn import summary_table  # noqa: E402
from resumable import load_rows  # noqa: E402


def replace_after(text: str, marker: str, table: str) -> str:
    """Replace the table (lines starting with '|') right after the marker line."""
    pattern = re.compile(rf"(<!-- {re.escape(marker)}[^\n]*-->\n)(?:\|[^\n]*\n|[A-Z_]+\n)*")
    if not pattern.search(text):
        raise SystemExit(f"README.md has no marker {marker!r}")
    return pattern.sub(lambda m: m.group(1) + table.strip() + "\n", text, count=1)


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    datasets = subprocess.run(
        [sys.executable, "-m", "hmlearn.cli", "datasets", "list", "--format", "github", "--no-location"],
        check=True, capture_output=True, text=True,
    ).stdout
    text = replace_after(text, "datasets-table:", datasets)
    rows = load_rows(ROOT / "bench" / "results" / "reproduce_chmcnn.jsonl")
    text = replace_after(text, "reproduction-table:", summary_table(rows, "paper", "github"))
    text = replace_after(text, "reproduction-table-fast:", summary_table(rows, "fast", "github"))
    rare = [r for r in load_rows(ROOT / "bench" / "results" / "rare_nodes.jsonl") if r["preset"] == "medium"]
    text = replace_after(text, "rare-nodes-table:", summary(rare, "github"))
    text = replace_after(text, "rare-nodes-per-dataset:", per_dataset(rare, "github"))
    readme.write_text(text)
    print("README.md tables regenerated")


if __name__ == "__main__":
    main()
