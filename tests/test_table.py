from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from hmlearn.cli import main
from hmlearn.data.table import read_hierarchy, read_table, read_tables
from hmlearn.errors import DataFormatError, HierarchyError
from hmlearn.predict_io import read_features

FUNCAT = """gene,x0,x1,x2,labels
YAL001C,0.5,,1,01.01;02
YAL002W,NA,2.5,?,01
YAL003W,1.5,3.5,2,02.05.01
"""


def write(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_table_with_paths_builds_the_hierarchy_and_closes_labels(tmp_path):
    data = read_table(write(tmp_path, FUNCAT))
    assert data.feature_names == ["x0", "x1", "x2"]  # 'gene' is the id column, 'labels' the target
    assert data.X.dtype == np.float32 and data.X.shape == (3, 3)
    assert np.isnan(data.X[0, 1]) and np.isnan(data.X[1, 0]) and np.isnan(data.X[1, 2]) and data.X[2, 0] == 1.5
    h = data.hierarchy  # separator '.' guessed; every prefix is a node under root
    assert h.nodes == ("root", "01", "02", "01.01", "02.05", "02.05.01")
    assert h.labels_of(data.Y[0]) == ["root", "01", "02", "01.01"]
    assert h.labels_of(data.Y[2]) == ["root", "02", "02.05", "02.05.01"]
    assert data.name == "t"


def test_parquet_with_list_labels_reads_like_the_csv(tmp_path):
    csv_data = read_table(write(tmp_path, FUNCAT))
    frame = pd.read_csv(tmp_path / "t.csv", keep_default_na=False, na_values=["", "NA", "?"])
    frame["labels"] = [cell.split(";") for cell in frame["labels"]]
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    parquet_data = read_table(tmp_path / "t.parquet")
    assert parquet_data.hierarchy == csv_data.hierarchy
    np.testing.assert_array_equal(parquet_data.X, csv_data.X)
    np.testing.assert_array_equal(parquet_data.Y, csv_data.Y)


def test_tables_share_a_hierarchy_built_from_all_their_labels(tmp_path):
    train = write(tmp_path, "x,labels\n1,a/b\n2,a\n", "train.csv")
    test = write(tmp_path, "x,labels\n3,c/d\n", "test.csv")
    train_data, test_data = read_tables([train, test])
    assert train_data.hierarchy is test_data.hierarchy
    assert {"a/b", "c/d"} <= set(train_data.hierarchy.nodes)  # 'c/d' appears only in the test table
    assert not train_data.Y[:, train_data.hierarchy.index["c"]].any()


def test_hierarchy_files_paths_and_edges(tmp_path):
    tree = read_hierarchy(write(tmp_path, "# FunCat\n01\n01|02\n\n03\n", "tree.txt"))
    assert tree.nodes == ("root", "01", "03", "01|02") and tree.not_evaluated == frozenset({"root"})
    dag = read_hierarchy(write(tmp_path, "top\tA\ntop\tB\nA\tC\nB\tC\n", "dag.tsv"))
    assert not dag.is_tree and {dag.nodes[i] for i in dag.parents[dag.index["C"]]} == {"A", "B"}
    assert dag.not_evaluated == frozenset({"top"})  # a node without parent is a root, not evaluated
    with pytest.raises(HierarchyError, match=r"mixed.txt:2: 'a,b' is neither a path nor a 'parent,child' pair"):
        read_hierarchy(write(tmp_path, "a\na,b\n", "mixed.txt"))


def test_labels_without_ancestors_are_closed_with_a_warning_or_refused(tmp_path):
    edges = write(tmp_path, "parent,child\nroot,A\nA,B\nB,C\n", "h.csv")
    table = write(tmp_path, "x,labels\n1,C\n2,A;B;C\n3,B\n")
    with pytest.warns(UserWarning, match=r"t.csv: 2 sample\(s\) listed a label without its ancestors"):
        data = read_table(table, hierarchy=edges)
    assert data.hierarchy.labels_of(data.Y[0]) == ["A", "B", "C", "root"]
    with pytest.raises(HierarchyError, match=r"t.csv: row 1, column 'labels': label 'C' is listed without its ancestor 'A'"):
        read_table(table, hierarchy=edges, strict=True)
    closed = write(tmp_path, "x,labels\n1,A;B\n", "closed.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a closed label set warns about nothing
        data = read_table(closed, hierarchy=edges)
    assert data.hierarchy.labels_of(data.Y[0]) == ["A", "B", "root"]


def test_prediction_tables_fail_with_the_training_tables_errors(tmp_path):
    write(tmp_path, "id,x0,x1,labels\ns1,0.5,1,01\ns2,0.7,high,02\n", "train.csv")
    write(tmp_path, "id,x0,x1\ns1,0.5,1\ns2,0.7,high\n", "new.csv")
    with pytest.raises(DataFormatError) as training:
        read_table(tmp_path / "train.csv")
    with pytest.raises(DataFormatError) as prediction:
        read_features(tmp_path / "new.csv", 2)
    tail = "row 2, column 'x1': 'high' is not a number"
    assert tail in str(training.value) and tail in str(prediction.value)
    X, ids = read_features(write(tmp_path, "x0,x1\n1,2\n,4\n", "ok.csv"), 2)
    assert ids == ["0", "1"] and np.isnan(X[1, 0])


def test_train_evaluate_predict_on_own_tables(tmp_path):
    rows = [(i, 0.1 * i, (i * 7) % 5, "01/02;03" if i % 3 else "01") for i in range(24)]
    frame = pd.DataFrame(rows, columns=["sample", "x0", "x1", "labels"])
    frame.iloc[:16].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[16:20].to_parquet(tmp_path / "valid.parquet", index=False)
    frame.iloc[20:].to_csv(tmp_path / "test.csv", index=False)
    ckpt = tmp_path / "m.ckpt"
    result = CliRunner().invoke(main, [str(a) for a in (
        "train", tmp_path / "train.csv", "--valid", tmp_path / "valid.parquet", "--test", tmp_path / "test.csv",
        "--epochs", 1, "--hidden-dim", 8, "--batch-size", 16, "--out", ckpt, "--quiet")])
    assert result.exit_code == 0, result.output
    assert "training on HMCDataset(train: 16 samples, 2 features" in result.output
    assert "test metrics (4 samples)" in result.output
    result = CliRunner().invoke(main, ["evaluate", str(ckpt), str(tmp_path / "test.csv")])
    assert result.exit_code == 0, result.output
    assert "test.csv [test], 4 samples" in result.output
    frame.iloc[20:].drop(columns="labels").to_csv(tmp_path / "new.csv", index=False)
    result = CliRunner().invoke(main, ["predict", str(ckpt), str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "p.csv")["sample"].tolist() == [20, 21, 22, 23]


def test_a_number_too_large_for_a_float_is_named_as_written(tmp_path):
    path = write(tmp_path, "x0,labels\n1e400,01\n2,02\n")
    with pytest.raises(DataFormatError, match=r"row 1, column 'x0': '1e400' is beyond float32"):
        read_table(path)


def test_a_label_name_holding_a_semicolon_is_read_with_another_delimiter(tmp_path):
    path = write(tmp_path, "x0,labels\n1,01/a;b|02\n2,02\n3,01/a;b\n")
    result = CliRunner().invoke(main, ["train", str(path), "--label-delimiter", "|", "--epochs", "1",
                                       "--hidden-dim", "4", "--out", str(tmp_path / "m.ckpt"), "--quiet"])
    assert result.exit_code == 0, result.output
    from hmlearn.training.checkpoint import load_checkpoint

    nodes = load_checkpoint(tmp_path / "m.ckpt")[0].hierarchy.nodes
    assert "01/a;b" in nodes and "b" not in nodes
