"""One-off: load the old benchmarks' JSON-lines results into the sweep results stores.

    python bench/import_jsonl.py

The former ``bench/reproduce_chmcnn.py`` and ``bench/rare_nodes.py`` (now ``configs/reproduce*.yaml`` and
``configs/rare-nodes.yaml``, run by ``hmlearn sweep``) stored one JSON line per run in
``bench/results/*.jsonl``. They trained exactly as a sweep cell does, so each line becomes the
row of its (dataset, method, seed) cell in ``bench/results/<config name>/results.sqlite``, under
the key ``expand(load_spec(config))`` gives that cell: ``hmlearn sweep configs/X.yaml --runs
bench/results/X`` counts them as done and ``hmlearn report bench/results/X`` tabulates them.

What a row holds: status ``ok``; the cell's resolved config (the one its key is hashed from);
the metrics the line has (``binary_ap`` back to a fraction: rare_nodes.py stored it in percent);
the line's seconds; ``versions`` = ``{"imported": "from bench/results/X.jsonl line N ...",
"torch": ...}`` (torch where the line has it). What the lines never had is left empty: the
reproduction lines have AU(PRC) only; no line has ``precision_present``, ``recall_present``,
``f1_present`` or ``coherent``, a per-node table, the curves (precision-recall, recall by depth
and by frequency) or the time it finished (``finished_at`` NULL: a cell run again by a sweep
supersedes the imported one in reports).

Each line's stored config is checked against the cell's: they must agree on every option the
line records, except the options of node weights (weight_side, descendant_counts, ...) in a
run without node weights, where they do nothing (their defaults changed since). Running the
script again replaces the imported rows (and only those); the sweeps' own rows are kept.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

from hmlearn.data.registry import get_spec
from hmlearn.experiments.spec import expand, load_spec, parse_spec
from hmlearn.experiments.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MARK = "from bench/results/"  # the start of versions.imported on every imported row
# (JSON-lines file, the preset of the lines to take, config) -> bench/results/<config name>/results.sqlite
IMPORTS = [
    ("reproduce_chmcnn.jsonl", "paper", "configs/reproduce.yaml"),
    ("reproduce_chmcnn.jsonl", "fast", "configs/reproduce-fast.yaml"),
    ("rare_nodes.jsonl", "medium", "configs/rare-nodes.yaml"),
]
# Options that do nothing without node weights (training/fit.py build_objective).
NODE_WEIGHT_OPTIONS = {"omega", "weight_side", "descendant_counts", "negative_weights"}


def cells_of(config: Path, datasets: list[str]) -> dict[tuple[str, str, int], object]:
    """(dataset, method, seed) -> Cell of the config, for ``datasets``.

    The config's family keywords (FUN, GO, others) expand to the datasets found locally; the
    lines name their datasets, so these are put in their place (after checking each belongs to
    a family the config lists): the keys are the same and no data file needs to be here.
    """
    spec = load_spec(config)
    for name in datasets:
        if name not in spec.datasets and get_spec(name).family not in spec.datasets:
            raise SystemExit(f"{config}: the dataset {name} of the results is not in its datasets {spec.datasets}")
    named = parse_spec({**spec.model_dump(), "datasets": datasets}, spec.source)
    return {(cell.dataset, cell.method, cell.seed): cell for cell in expand(named)}


def check_config(where: str, recorded: dict, resolved: dict) -> None:
    inert = NODE_WEIGHT_OPTIONS if resolved.get("node_weights") is None else set()
    differ = {k: (v, resolved.get(k)) for k, v in recorded.items() if k not in inert and resolved.get(k) != v}
    if differ:
        raise SystemExit(f"{where}: the run's config differs from the cell's (recorded, cell): {differ}")


def import_lines(jsonl: str, preset: str, config: str) -> tuple[Path, int]:
    source = RESULTS / jsonl
    lines = [(n, json.loads(text)) for n, text in enumerate(source.read_text().splitlines(), 1) if text.strip()]
    lines = [(n, line) for n, line in lines if line["preset"] == preset]
    cells = cells_of(ROOT / config, list(dict.fromkeys(line["dataset"] for _, line in lines)))
    rows, seen = [], set()
    for n, line in lines:
        where = f"{source.relative_to(ROOT)}:{n}"
        method = line.get("method", "C-HMCNN")  # reproduce_chmcnn.py ran plain C-HMCNN only
        cell_id = (line["dataset"], method, line["seed"])
        if cell_id not in cells:
            raise SystemExit(f"{where}: {cell_id} is no cell of {config}")
        if cell_id in seen:
            raise SystemExit(f"{where}: a second run of {cell_id}")
        seen.add(cell_id)
        cell = cells[cell_id]
        check_config(where, line["config"], cell.config)
        metrics = {k: float(line[k]) for k in ("au_prc", "binary_ap", "precision", "recall", "f1", "recall_rare")
                   if k in line}
        if "binary_ap" in metrics:
            metrics["binary_ap"] /= 100  # rare_nodes.py stored it in percent; evaluate() gives a fraction
        versions = {"imported": f"{MARK}{jsonl} line {n} (bench/import_jsonl.py; written by the old "
                                f"bench/{'rare_nodes' if 'method' in line else 'reproduce_chmcnn'}.py)"}
        if "torch" in line:
            versions["torch"] = line["torch"]
        rows.append({"key": cell.key, "sweep": cell.sweep, "dataset": cell.dataset, "method": cell.method,
                     "seed": cell.seed, "status": "ok", "config": cell.config, "metrics": metrics,
                     "seconds": line["seconds"], "versions": versions})
    target = RESULTS / Path(config).stem
    with ResultStore(target) as store:
        path = store.path
    connection = sqlite3.connect(path, isolation_level=None)  # earlier imports (keys may have changed): out
    connection.execute("DELETE FROM runs WHERE json_extract(versions, '$.imported') LIKE ?", (MARK + "%",))
    connection.close()
    with ResultStore(path) as store:
        for row in rows:
            store.add(row)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("VACUUM")  # small; closing the last connection folds the log into the file
    connection.close()
    return path, len(rows)


def main() -> None:
    for jsonl, preset, config in IMPORTS:
        path, n = import_lines(jsonl, preset, config)
        print(f"{jsonl} (preset {preset}): {n} runs -> {path.relative_to(ROOT)} "
              f"({path.stat().st_size / 1024:.0f} KiB), the cells of {config}")


if __name__ == "__main__":
    sys.exit(main())
