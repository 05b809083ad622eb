"""The bad-input corpus (tests/data/bad): each file fails with one exact line, exit code 2, no traceback.

The ARFF cases live in one text file, ``arff_cases.txt``, written out to NAME.arff files here
(no .arff file is tracked); the other cases are files as they are.

Every message names the file (and the line, row, column or node) and says what is wrong. A
failed command writes nothing: the test's own folder stays empty, so no checkpoint, state file,
prediction or temporary part is left behind.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hmlearn.cli import main

CORPUS = Path(__file__).resolve().parent / "data" / "bad"
ARFF_CASES = "arff_cases.txt"


def write_corpus(folder: Path) -> Path:
    """The corpus as one file per failure mode in ``folder``: its files, and each ARFF case of arff_cases.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in CORPUS.iterdir():
        if path.name != ARFF_CASES:
            (folder / path.name).write_bytes(path.read_bytes())
    name, lines = None, []
    for line in (CORPUS / ARFF_CASES).read_text().splitlines(keepends=True) + ["=== end\n"]:
        if line.startswith("=== "):
            if name is not None:
                (folder / name).write_text("".join(lines))
            name, lines = line[4:].strip(), []
        elif name is not None:
            lines.append(line)
    return folder


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("bad"))
TRAIN = ("--epochs", "1", "--hidden-dim", "8", "--batch-size", "32", "--quiet")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A folder with train.csv (features x0..x3 = 0.001, 0.002, 0.003: mean 0.002, scale 0.000816, so
    1e38 overflows float32 once standardised), its DAG hierarchy.csv and m.ckpt trained on them."""
    folder = tmp_path_factory.mktemp("model")
    labels = ["n1", "n2;n1", "n3;n1;n2", "n4;n3;n1;n2"]
    rows = [f"{v},{v},{v},{v},{labels[i % 4]}" for i, v in enumerate([0.001, 0.002, 0.003] * 4)]
    (folder / "train.csv").write_text("x0,x1,x2,x3,labels\n" + "\n".join(rows) + "\n")
    (folder / "hierarchy.csv").write_text("parent,child\nroot,n1\nroot,n2\nn1,n3\nn2,n3\nn3,n4\n")
    result = run("train", folder / "train.csv", "--hierarchy", folder / "hierarchy.csv", *TRAIN,
                 "--out", folder / "m.ckpt")
    assert result.exit_code == 0, result.output
    return folder


OVERFLOW = ("row 2, column {column}: 1e+38 overflows float32 after standardisation (training mean 0.002, "
            "scale 0.000816); check the value, or rescale the column (e.g. take its log) and retrain")

# (command line, the one line after "error: "); {bad}: the corpus, {model}: the fixture's folder, {tmp}: tmp_path
CASES = {
    # ARFF: data/arff.py names file:line, the column and what is wrong
    "arff_wrong_column_count": (
        ["train", "{bad}/arff_wrong_column_count.arff"],
        "{bad}/arff_wrong_column_count.arff:8: expected 3 comma-separated values, found 2"),
    "arff_unknown_nominal": (
        ["train", "{bad}/arff_unknown_nominal.arff"],
        "{bad}/arff_unknown_nominal.arff:8: column 2 (colour): 'purple' is not one of {{red,green,blue}}"),
    "arff_bad_number": (
        ["train", "{bad}/arff_bad_number.arff"],
        "{bad}/arff_bad_number.arff:8: column 2 (x2): '4#5' is not a number; use ? for a missing value"),
    "arff_value_beyond_float32": (
        ["train", "{bad}/arff_value_beyond_float32.arff"],
        ("{bad}/arff_value_beyond_float32.arff:7: column 1 (x1): '1e39' is beyond float32 (largest 3.4e+38); "
         "rescale the feature, e.g. take its log")),
    "arff_missing_labels": (
        ["train", "{bad}/arff_missing_labels.arff"],
        "{bad}/arff_missing_labels.arff:8: column 3 (class): no labels"),
    "arff_missing_data_section": (
        ["train", "{bad}/arff_missing_data_section.arff"],
        "{bad}/arff_missing_data_section.arff: no @DATA line found (is this an ARFF file?)"),
    "arff_empty": (
        ["train", "{bad}/arff_empty.arff"],
        "{bad}/arff_empty.arff:5: no data rows after @DATA"),
    "arff_label_not_in_hierarchy": (
        ["train", "{bad}/arff_label_not_in_hierarchy.arff"],
        "{bad}/arff_label_not_in_hierarchy.arff:7: label '03/04' is not a node of the hierarchy"),
    "arff_hierarchy_cycle": (
        ["train", "{bad}/arff_hierarchy_cycle.arff"],
        "{bad}/arff_hierarchy_cycle.arff:4: cycle in hierarchy: A -> B -> C -> A"),
    "arff_sparse_row": (
        ["train", "{bad}/arff_sparse_row.arff"],
        "{bad}/arff_sparse_row.arff:6: sparse ARFF rows ({{index value, ...}}) are not supported"),
    "arff_unsupported_type": (
        ["train", "{bad}/arff_unsupported_type.arff"],
        "{bad}/arff_unsupported_type.arff:3: attribute 'when' has unsupported type 'date'"),
    "arff_with_table_options": (
        ["train", "{bad}/arff_empty.arff", "--hierarchy", "{bad}/hierarchy_edges.csv"],
        "--hierarchy: only for CSV / Parquet tables; {bad}/arff_empty.arff declares its labels and hierarchy itself"),
    # tables: data/table.py names the file, the row (1 = first row below the header) and the column
    "table_missing_labels_column": (
        ["train", "{bad}/table_missing_labels_column.csv"],
        ("{bad}/table_missing_labels_column.csv: no labels column 'labels'; the columns are id, x0, x1, tags; "
         "name the column of label paths with --labels-column")),
    "table_wrong_type": (
        ["train", "{bad}/table_wrong_type.csv"],
        ("{bad}/table_wrong_type.csv: row 2, column 'x1': 'high' is not a number; feature columns must be "
         "numeric (leave a missing value's cell empty)")),
    "table_text_column": (
        ["train", "{bad}/table_text_column.csv"],
        ("{bad}/table_text_column.csv: column 'site' holds text (row 1: 'forest'), not numbers; name it as the "
         "id column (--id-column) or remove it")),
    "table_inf": (
        ["train", "{bad}/table_inf.csv"],
        "{bad}/table_inf.csv: row 3, column 'x0': -inf; inf is not a missing value, use an empty cell for missing"),
    "table_value_beyond_float32": (
        ["train", "{bad}/table_value_beyond_float32.csv"],
        ("{bad}/table_value_beyond_float32.csv: row 2, column 'x0': 1e+39 is beyond float32 (largest 3.4e+38); "
         "rescale the column, e.g. take its log")),
    "table_label_outside_hierarchy": (
        ["train", "{bad}/table_label_outside_hierarchy.csv", "--hierarchy", "{bad}/hierarchy_paths.txt"],
        ("{bad}/table_label_outside_hierarchy.csv: row 2, column 'labels': label '03/07' is not a node of the "
         "hierarchy in {bad}/hierarchy_paths.txt")),
    "table_not_closed_strict": (
        ["train", "{bad}/table_not_closed.csv", "--hierarchy", "{bad}/hierarchy_edges.csv", "--strict"],
        ("{bad}/table_not_closed.csv: row 1, column 'labels': label 'C' is listed without its ancestor 'B'; "
         "list every ancestor, or leave out strict (--strict) to add them")),
    "table_empty": (
        ["train", "{bad}/table_empty.csv"],
        "{bad}/table_empty.csv: no data rows below the header; add one row per sample"),
    "table_zero_bytes": (
        ["train", "{bad}/table_zero_bytes.csv"],
        ("{bad}/table_zero_bytes.csv: the file is empty; a table needs a header row naming its columns, then one "
         "row per sample")),
    "table_duplicate_column": (
        ["train", "{bad}/table_duplicate_column.csv"],
        ("{bad}/table_duplicate_column.csv: column name 'x0' appears twice (columns 2 and 4); give every column a "
         "unique name")),
    "table_unnamed_column": (
        ["train", "{bad}/table_unnamed_column.csv"],
        ("{bad}/table_unnamed_column.csv: column 1 has no name in the header row (a saved pandas index?); name it, "
         "e.g. 'id', or save without the index")),
    "table_extra_cell": (
        ["train", "{bad}/table_extra_cell.csv"],
        ("{bad}/table_extra_cell.csv: row 2 has 5 cells, the header names 4 columns; quote cells that contain a "
         "comma")),
    "table_empty_path_component": (
        ["train", "{bad}/table_empty_path_component.csv"],
        "{bad}/table_empty_path_component.csv: row 2, column 'labels': label path '01//02' has an empty component"),
    "table_no_labels": (
        ["train", "{bad}/table_no_labels.csv"],
        ("{bad}/table_no_labels.csv: column 'labels' holds no labels; write each sample's label paths there, "
         "joined by ';'")),
    "table_other_columns": (
        ["train", "{bad}/table_not_closed.csv", "--test", "{bad}/table_other_columns.csv"],
        ("{bad}/table_other_columns.csv: feature column 2 is 'x9', in {bad}/table_not_closed.csv it is 'x1'; "
         "use the same columns in the same order")),
    # hierarchy files given with --hierarchy
    "hierarchy_cycle": (
        ["train", "{bad}/table_not_closed.csv", "--hierarchy", "{bad}/hierarchy_cycle.csv"],
        "{bad}/hierarchy_cycle.csv: cycle in hierarchy: A -> B -> C -> A"),
    "hierarchy_duplicate_node": (
        ["train", "{bad}/table_label_outside_hierarchy.csv", "--hierarchy", "{bad}/hierarchy_duplicate_node.txt"],
        "{bad}/hierarchy_duplicate_node.txt:4: duplicate node '01/01' (first on line 2); list each node once"),
    # against a checkpoint: feature counts, labels outside its hierarchy, values that overflow once standardised
    "features_mismatch": (
        ["predict", "{model}/m.ckpt", "{bad}/features_mismatch.csv", "--out", "{tmp}/p.csv"],
        "{bad}/features_mismatch.csv: missing feature column(s) 'x0', 'x1', 'x2', 'x3'; the model was trained on them"),
    "evaluate_features_mismatch": (
        ["evaluate", "{model}/m.ckpt", "{bad}/evaluate_features_mismatch.csv"],
        ("{bad}/evaluate_features_mismatch.csv: feature columns differ from the training table's (missing: 'x0', "
         "'x1', 'x2', 'x3'; not trained on: 'a', 'b')")),
    "evaluate_label_outside_model": (
        ["evaluate", "{model}/m.ckpt", "{bad}/evaluate_label_outside_model.csv"],
        "{bad}/evaluate_label_outside_model.csv: row 2, column 'labels': label 'zz' is not a node of the hierarchy"),
    "predict_overflow_after_preprocessing": (
        ["predict", "{model}/m.ckpt", "{bad}/overflow_after_preprocessing.csv", "--out", "{tmp}/p.csv"],
        "{bad}/overflow_after_preprocessing.csv: " + OVERFLOW.format(column="'x2'")),
    "evaluate_overflow_after_preprocessing": (
        ["evaluate", "{model}/m.ckpt", "{bad}/overflow_after_preprocessing_labeled.csv"],
        "{bad}/overflow_after_preprocessing_labeled.csv: " + OVERFLOW.format(column="'x2'")),
    "train_test_overflow_after_preprocessing": (
        ["train", "{model}/train.csv", "--hierarchy", "{model}/hierarchy.csv",
         "--test", "{bad}/overflow_after_preprocessing_labeled.csv"],
        "{bad}/overflow_after_preprocessing_labeled.csv: " + OVERFLOW.format(column="'x2'")),
}


def _command(args: list[str], request: pytest.FixtureRequest, tmp_path: Path) -> tuple[list[str], dict]:
    where = {"bad": request.getfixturevalue("bad"), "tmp": tmp_path}
    if any("{model}" in a for a in args):
        where["model"] = request.getfixturevalue("model")
    command = [a.format(**where) for a in args]
    if command[0] == "train":
        command += [*TRAIN, "--out", str(tmp_path / "out.ckpt")]
    return command, where


@pytest.mark.parametrize(("args", "message"), list(CASES.values()), ids=list(CASES))
def test_bad_input_fails_with_one_exact_line(args, message, request, tmp_path):
    command, where = _command(args, request, tmp_path)
    result = run(*command)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == ["error: " + message.format(**where)]
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary part


def test_every_corpus_file_is_exercised(bad):
    used = {Path(a).name for args, _ in CASES.values() for a in args if a.startswith("{bad}/")}
    assert sorted(p.name for p in bad.iterdir()) == sorted(used)
    assert len([name for name in used if name.endswith(".arff")]) == 11  # every ARFF case was written out


def test_label_without_its_ancestors_is_added_with_a_warning_unless_strict(bad, tmp_path):
    result = run("train", bad / "table_not_closed.csv", "--hierarchy", bad / "hierarchy_edges.csv", *TRAIN,
                 "--out", tmp_path / "m.ckpt")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        (f"warning: {bad}/table_not_closed.csv: 2 sample(s) listed a label without its ancestors; their label sets "
         "were closed upwards (strict=True / --strict refuses this)")
    ]
    assert (tmp_path / "m.ckpt").is_file()


def test_failed_command_leaves_no_file_at_its_out_path(bad, model, tmp_path):
    """Failures after the data is read (an overflow found only with the training statistics) write nothing."""
    out = tmp_path / "predictions.csv"
    out.write_text("an older file that must survive\n")
    result = run("predict", model / "m.ckpt", bad / "overflow_after_preprocessing.csv", "--out", out)
    assert result.exit_code == 2
    assert out.read_text() == "an older file that must survive\n"
    ckpt = tmp_path / "m.ckpt"
    result = run("train", model / "train.csv", "--hierarchy", model / "hierarchy.csv",
                 "--test", bad / "overflow_after_preprocessing_labeled.csv", *TRAIN, "--out", ckpt)
    assert result.exit_code == 2 and "overflows float32" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]  # no m.ckpt, m.ckpt.state, parts


def test_debug_shows_the_traceback_instead_of_one_line(bad):
    path = bad / "table_inf.csv"
    message = f"{path}: row 3, column 'x0': -inf; inf is not a missing value, use an empty cell for missing"
    debug = subprocess.run([sys.executable, "-m", "hmlearn.cli", "--debug", "train", str(path)],
                           capture_output=True, text=True, check=False)
    assert debug.returncode == 1
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert debug.stderr.splitlines()[-1] == f"hmlearn.errors.DataFormatError: {message}"
