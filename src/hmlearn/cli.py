"""The `hmlearn` command. User mistakes end with one line on stderr and a non-zero exit."""

from __future__ import annotations

import sys
import click
from tabulate import tabulate

from hmlearn.errors import HMLError

TABLE_FORMATS = click.Choice(["simple", "github", "plain"])


class _Group(click.Group):
    """Turns HMLError (and data errors) into one clear line and exit code 2, unless --debug."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (HMLError, FileNotFoundError) as error:
            if ctx.params.get("debug"):
                raise
            click.echo(f"error: {error}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="hmlearn")
def main(debug: bool) -> None:
    """Hierarchical multi-label learning that finds the rare, deep nodes of a hierarchy."""


# ---------------------------------------------------------------------------------- datasets
@main.group()
def datasets() -> None:
    """The standard HMC benchmark datasets: list, describe, download."""


@datasets.command("list")
@click.option("--format", "fmt", type=TABLE_FORMATS, default="simple", show_default=True,
              help="Table style; 'github' gives the Markdown table of the README.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Look here first.")
@click.option("--no-location", is_flag=True, help="Leave out the 'found at' column (for docs).")
def datasets_list(fmt: str, data_dir: str | None, no_location: bool) -> None:
    """Every standard dataset with its expected size and published hyper-parameters."""
    from hmlearn.data.registry import DATASETS, PUBLISHED_AUPRC
    from hmlearn.data.store import locate

    rows = []
    for spec in DATASETS.values():
        found = [locate(spec, split, data_dir) for split in spec.splits]
        row = {
            "dataset": spec.name,
            "hierarchy": "DAG" if spec.family == "GO" else "tree",
            "splits": "/".join(spec.splits),
            "features": spec.n_features,
            "nodes": spec.n_nodes,
            "hidden": spec.hidden_dim,
            "epochs": spec.epochs,
            "lr": f"{spec.lr:g}",
            "AU(PRC) published": f"{PUBLISHED_AUPRC[spec.name]:.3f}",
        }
        if not no_location:
            row["found at"] = str(found[0].parent) if all(found) else ("partly" if any(found) else "download")
        rows.append(row)
    click.echo(tabulate(rows, headers="keys", tablefmt=fmt))


@datasets.command("info")
@click.argument("name")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--format", "fmt", type=TABLE_FORMATS, default="simple", show_default=True)
def datasets_info(name: str, data_dir: str | None, fmt: str) -> None:
    """Samples, features, nodes, depth, label cardinality and node frequencies per split."""
    from hmlearn.data.registry import get_spec
    from hmlearn.data.store import fetch, load_dataset
    from hmlearn.data.summary import split_summary

    spec = get_spec(name)
    paths = fetch(spec.name, data_dir=data_dir)
    parts = load_dataset(spec.name, splits=tuple(spec.splits), data_dir=data_dir)
    summaries = [split_summary(part) for part in parts]
    click.echo(f"{spec.name}: {spec.family} {'DAG' if spec.family == 'GO' else 'tree'}, files in {paths[spec.splits[0]].parent}")
    click.echo(tabulate([list(s.values()) for s in summaries], headers=list(summaries[0]), tablefmt=fmt))
    first = summaries[0]
    checks = [
        ("features (after one-hot)", first["features"], spec.n_features),
        ("evaluated nodes", first["evaluated nodes"], spec.n_nodes),
    ]
    for label, actual, expected in checks:
        status = "ok" if actual == expected else "MISMATCH"
        click.echo(f"{label}: {actual} (published {expected}) {status}")
    click.echo(f"nodes with roots: {first['nodes']}; published hyper-parameters: {spec.hyperparameters()}")


@datasets.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Download here.")
def datasets_fetch(names: tuple[str, ...], data_dir: str | None) -> None:
    """Download missing files of NAMES ('all' for every standard dataset), checking SHA-256."""
    from hmlearn.data.registry import DATASETS
    from hmlearn.data.store import fetch

    selected = list(DATASETS) if names == ("all",) else list(names)
    for name in selected:
        paths = fetch(name, data_dir=data_dir)
        for split, path in paths.items():
            click.echo(f"{name} {split}: {path}")


if __name__ == "__main__":
    main()
