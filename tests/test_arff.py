from __future__ import annotations

import numpy as np
import pytest

from hmlearn.data.arff import read_arff, read_arff_header
from hmlearn.data.registry import DATASETS
from hmlearn.errors import DataFormatError, HierarchyError

from .conftest import SHARED_DATA, requires_shared

FUN_LIKE = """% a comment before the header
@RELATION 'toy'

@ATTRIBUTE g1 numeric
@ATTRIBUTE 'g 2' real
@ATTRIBUTE colour {red,green,blue}
@ATTRIBUTE class hierarchical 01,01/01,01/02,01/02/03,02
@DATA
% a comment in the data
1.5,2,red,01/02/03@02

?,-1e3,blue,01/01
3,?,?,02
"""

GO_LIKE = """@RELATION go
@ATTRIBUTE x numeric
@ATTRIBUTE class hierarchical root/GO0003674,root/GO0008150,GO0003674/A,GO0008150/A,A/B
@DATA
1,B
2,GO0008150@A
"""


def write(tmp_path, text, name="toy.arff"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_numeric_nominal_missing_comments_and_multipath_labels(tmp_path):
    data = read_arff(write(tmp_path, FUN_LIKE))
    assert data.feature_names == ["g1", "g 2", "colour=red", "colour=green", "colour=blue"]
    np.testing.assert_array_equal(data.X[0], [1.5, 2, 1, 0, 0])
    assert np.isnan(data.X[1, 0]) and data.X[1, 1] == -1000 and data.X[1, 4] == 1
    assert np.isnan(data.X[2, 1]) and np.all(np.isnan(data.X[2, 2:]))  # missing nominal -> NaN block
    h = data.hierarchy
    assert h.labels_of(data.Y[0]) == ["root", "01", "02", "01/02", "01/02/03"]
    assert h.labels_of(data.Y[1]) == ["root", "01", "01/01"]
    assert h.labels_of(data.Y[2]) == ["root", "02"]
    assert h.not_evaluated == frozenset({"root"})


def test_go_convention_is_detected_and_labels_closed_in_the_dag(tmp_path):
    data = read_arff(write(tmp_path, GO_LIKE), not_evaluated=["root", "GO0003674", "GO0008150"])
    h = data.hierarchy
    assert not h.is_tree
    assert set(h.labels_of(data.Y[0])) == {"root", "GO0003674", "GO0008150", "A", "B"}
    assert set(h.labels_of(data.Y[1])) == {"root", "GO0003674", "GO0008150", "A"}
    assert h.evaluated.sum() == 2


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("1,2,red", r"toy.arff:14: expected 4 comma-separated values, found 3"),
        ("1,2,red,01,5", r"toy.arff:14: expected 4 comma-separated values, found 5"),
        ("1,abc,red,01", r"toy.arff:14: column 2 \(g 2\): 'abc' is not a number"),
        ("1,2,purple,01", r"toy.arff:14: column 3 \(colour\): 'purple' is not one of \{red,green,blue\}"),
        ("1,2,red,01@03/04", r"toy.arff:14: label '03/04' is not a node of the hierarchy"),
        ("{0 1, 3 01}", r"toy.arff:14: sparse ARFF rows"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, bad_line, message):
    text = FUN_LIKE.rstrip("\n") + "\n" + bad_line + "\n"
    with pytest.raises((DataFormatError, HierarchyError), match=message):
        read_arff(write(tmp_path, text))


def test_missing_data_section_and_class_attribute(tmp_path):
    with pytest.raises(DataFormatError, match=r"no @DATA line"):
        read_arff(write(tmp_path, FUN_LIKE.split("@DATA")[0]))
    no_class = FUN_LIKE.replace("@ATTRIBUTE class hierarchical 01,01/01,01/02,01/02/03,02\n", "")
    with pytest.raises(DataFormatError, match=r"toy.arff:7: expected exactly one 'hierarchical' class attribute"):
        read_arff(write(tmp_path, no_class))
    with pytest.raises(DataFormatError, match=r"toy.arff:4: attribute 'g1' has unsupported type"):
        read_arff(write(tmp_path, FUN_LIKE.replace("g1 numeric", "g1 date")))


def test_a_path_listed_twice_in_the_header_is_accepted_as_once(tmp_path):
    """Some public HMC files repeat paths in the 'hierarchical' attribute; the reference parsers accept that."""
    text = FUN_LIKE.replace("01,01/01,01/02", "01,01/01,01/01,01/02,01")
    assert read_arff(write(tmp_path, text)).hierarchy == read_arff(write(tmp_path, FUN_LIKE, "plain.arff")).hierarchy


def test_an_edge_listed_twice_is_accepted_as_once():
    from hmlearn.hierarchy import Hierarchy

    once = Hierarchy.from_edges(["root/a", "a/b", "root/c"])
    assert Hierarchy.from_edges(["root/a", "a/b", "a/b", "root/c"]) == once


SHARED_FILES = [
    (name, split) for name, spec in DATASETS.items() for split in spec.splits
    if (SHARED_DATA / spec.files[split]).is_file()
]


@requires_shared
@pytest.mark.parametrize(("name", "split"), SHARED_FILES)
def test_every_shared_file_matches_the_published_sizes(name, split):
    spec = DATASETS[name]
    header = read_arff_header(SHARED_DATA / spec.files[split])
    assert len(header.feature_names) == spec.n_features
    data = read_arff(SHARED_DATA / spec.files[split], not_evaluated=list(spec.not_evaluated))
    assert data.X.shape[1] == spec.n_features
    assert int(data.hierarchy.evaluated.sum()) == spec.n_nodes
    assert len(data.hierarchy) == spec.n_outputs
    assert data.hierarchy.is_closed(data.Y)
    if spec.family != "GO":  # GO rows may carry only a namespace root
        assert data.Y[:, data.hierarchy.evaluated].any(axis=1).all()


@requires_shared
def test_published_node_counts_for_derisi_fun_and_spo_go():
    assert len(read_arff(SHARED_DATA / DATASETS["derisi_FUN"].files["test"]).hierarchy) == 500
    spo = read_arff(SHARED_DATA / DATASETS["spo_GO"].files["test"], not_evaluated=list(DATASETS["spo_GO"].not_evaluated))
    assert len(spo.hierarchy) == 4120 and spo.hierarchy.evaluated.sum() == 4116


def test_an_arff_number_too_large_for_a_float_is_named_as_written_and_inf_stays_allowed(tmp_path):
    text = "@RELATION t\n@ATTRIBUTE x numeric\n@ATTRIBUTE c hierarchical 01,02\n@DATA\n{},01\n2,02\n"
    with pytest.raises(DataFormatError, match=r"t.arff:5: column 1 \(x\): '1e400' is beyond float32"):
        read_arff(write(tmp_path, text.format("1e400"), "t.arff"))
    assert np.isinf(read_arff(write(tmp_path, text.format("inf"), "u.arff")).X[0, 0])
