"""data/sources.py: every kind of dataset `hmlearn train` accepts also runs in a sweep, read the same way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from hmlearn.cli import main
from hmlearn.data.sources import SWEEP_TEST_FRACTION, open_dataset, sweep_source
from hmlearn.errors import HMLError
from hmlearn.experiments.spec import SpecError, expand, parse_spec
from hmlearn.experiments.store import ResultStore

PATHS = ["01/01", "01/02", "02/01", "02/02/01", "03"]


def write_table(path, rows=160, seed=7, start=0):
    """A user's CSV: an id column, 5 feature columns and ';'-joined label paths that follow the features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 5)).astype(np.float32)
    labels = [";".join(PATHS[i] for i in range(5) if x[i] > 0.3) or "03" for x in X]
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    frame.insert(0, "sample", [f"s{start + r}" for r in range(rows)])
    frame["labels"] = labels
    frame.to_csv(path, index=False)
    return path


SPEC = {"name": "tables", "preset": "fast", "seeds": [0],
        "methods": {"plain": {"epochs": 3, "hidden_dim": 16, "batch_size": 16}}}


def test_a_sweep_runs_a_single_csv_table_split_stratified(tmp_path):
    table = write_table(tmp_path / "mine.csv")
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: tables\npreset: fast\ndatasets: [mine.csv]\nseeds: [0]\n"
                    "methods:\n  plain: {epochs: 3, hidden_dim: 16, batch_size: 16}\n")
    result = CliRunner().invoke(main, ["sweep", str(spec), "--runs", str(tmp_path / "runs"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "1 of 1 cells done, 0 failed" in result.output
    with ResultStore(tmp_path / "runs") as store:
        frame = store.frame()
    assert list(frame["dataset"]) == ["mine.csv"]
    source = sweep_source(str(table))
    assert len(source.test) == round(SWEEP_TEST_FRACTION * 160)
    assert len(source.train) + len(source.test) == 160
    assert 0.0 < frame["metrics"].iloc[0]["au_prc"] <= 1.0


def test_a_sweep_table_with_train_in_its_name_uses_its_test_sibling(tmp_path):
    write_table(tmp_path / "mine_train.csv", 120)
    write_table(tmp_path / "mine_test.csv", 40, seed=8, start=120)
    spec = parse_spec({**SPEC, "datasets": [str(tmp_path / "mine_train.csv")]})
    source = sweep_source(expand(spec)[0].location)
    assert (len(source.train), len(source.test)) == (120, 40)
    assert source.hierarchy == source.train.hierarchy


def test_a_sweep_table_and_train_read_the_same_rows(tmp_path):
    table = write_table(tmp_path / "own_train.csv")
    write_table(tmp_path / "own_test.csv", 40, seed=8)
    via_train = open_dataset(str(table))
    via_sweep = sweep_source(str(table))
    assert via_train.published == {} and via_train.train.X.shape == (160, 5)
    np.testing.assert_array_equal(via_train.train.X, via_sweep.train.X)
    np.testing.assert_array_equal(via_train.train.Y, via_sweep.train.Y)


def test_a_missing_sweep_table_fails_its_cell_with_the_file_named(tmp_path):
    spec = parse_spec({**SPEC, "datasets": [str(tmp_path / "absent.csv")]})
    with pytest.raises((HMLError, FileNotFoundError), match="absent.csv"):
        sweep_source(expand(spec)[0].location)


def test_an_unknown_dataset_name_in_a_spec_still_names_the_choices():
    with pytest.raises(SpecError, match="unknown dataset 'derisi_FNU'; did you mean derisi_FUN"):
        parse_spec({**SPEC, "datasets": ["derisi_FNU"]})
