"""Sweep specs: YAML validated into a typed spec with exact error messages, grids, cells and keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from hmlearn.data.sources import split_files
from hmlearn.experiments import spec as spec_module
from hmlearn.experiments.spec import SpecError, expand, load_spec, parse_spec

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BASE = {"name": "x", "datasets": ["derisi_FUN"], "methods": {"plain": {}}}


def _error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return str(caught.value).replace(str(path), "x.yaml")


@pytest.mark.parametrize(("change", "message"), [
    ({"methods": {"weights": {"omga": 0.5}}}, "methods.weights.omga: unknown option; did you mean omega?"),
    ({"method": {}}, "method: unknown key; did you mean methods?"),
    ({"methods": {"w": {"node_weights": "classwise"}}},
     "methods.w.node_weights: 'classwise' is not one of class-wise, binary or null; did you mean class-wise?"),
    ({"methods": {"w": {"focal": "epistemc"}}},
     ("methods.w.focal: 'epistemc' is not one of mean, predictive, aleatoric, epistemic, epistemic_kl, gated "
     "or null; did you mean epistemic?")),
    ({"methods": {"w": {"hidden_dim": "big"}}}, "methods.w.hidden_dim: expected an integer, got 'big'"),
    ({"methods": {"w": {"heads": 2.5}}}, "methods.w.heads: expected an integer, got 2.5"),
    ({"methods": {"w": {"omega": [0.5, 1.5]}}}, "methods.w.omega[1]: 1.5 is out of range [0, 1]"),
    ({"methods": {"w": {"dropout": 1.0}}}, "methods.w.dropout: 1.0 is out of range [0, 1)"),
    ({"methods": {"w": {"lr": 0}}}, "methods.w.lr: 0.0 is out of range (0, inf)"),
    ({"methods": {"w": {"descendant_counts": "yes"}}}, "methods.w.descendant_counts: expected true or false, got 'yes'"),
    ({"methods": {"w": {"seed": 3}}}, "methods.w.seed: not a method option; set seeds with the top-level 'seeds' key"),
    ({"methods": {"w": {"threads": 2}}}, "methods.w.threads: not a method option; set 'threads_per_cell' instead"),
    ({"methods": {"w": {"omega": []}}}, "methods.w.omega: an empty list gives no runs; give at least one value"),
    ({"methods": {"w": {"omega": [0.5, 0.5]}}}, "methods.w.omega: the list repeats a value: [0.5, 0.5]"),
    ({"methods": {"w": [1]}}, "methods.w: expected a mapping of training options (or {} for the defaults), got [1]"),
    ({"methods": {"a": {"omega": [0.5]}, "a (omega=0.5)": {}}},
     "methods.a (omega=0.5): makes the label 'a (omega=0.5)', which methods.a makes too"),
    ({"methods": {}}, "methods: needs at least one entry"),
    ({"methods": "plain"}, "methods: expected a mapping, got 'plain'"),
    ({"datasets": ["derisi_FN"]}, "datasets[0]: unknown dataset 'derisi_FN'; did you mean derisi_FUN?"),
    ({"datasets": ["derisi_FUN", "zzz"]},
     ("datasets[1]: unknown dataset 'zzz'; use a standard dataset's name, FUN, GO, others, or the path of a "
     "*train*.arff file")),
    ({"datasets": []}, "datasets: needs at least one entry"),
    ({"preset": "slow"}, "preset: 'slow' is not one of paper, medium, fast"),
    ({"seeds": [0, "a"]}, "seeds[1]: expected an integer, got 'a'"),
    ({"seeds": [-1]}, "seeds[0]: must be at least 0, got -1"),
    ({"seeds": [0, 0]}, "seeds: a seed is listed twice: [0, 0]"),
    ({"threads_per_cell": 0}, "threads_per_cell: must be at least 1, got 0"),
    ({"name": "a/b"}, "name: 'a/b': use letters, digits, '.', '_' and '-' (it names the runs folder)"),
])
def test_errors_name_the_file_and_key_path(tmp_path, change, message):
    import yaml

    assert _error(tmp_path, yaml.safe_dump({**BASE, **change})) == f"x.yaml: {message}"


def test_file_level_errors(tmp_path):
    assert _error(tmp_path, "name: x\ndatasets: [derisi_FUN]\n") == "x.yaml: methods: required key missing"
    assert _error(tmp_path, "") == "x.yaml: the file is empty"
    assert _error(tmp_path, "- a\n- b\n") == (
        "x.yaml: a sweep spec is a mapping of keys (name, datasets, methods, ...), got list")
    assert _error(tmp_path, "name: x\nmethods: {a: [}\n").startswith("x.yaml:2: not valid YAML (")
    with pytest.raises(SpecError, match=r"nope\.yaml: no such spec file"):
        load_spec(tmp_path / "nope.yaml")


def test_values_are_normalised():
    spec = parse_spec({**BASE, "seeds": 3, "datasets": "derisi_fun",
                       "methods": {"w": {"lr": "1e-4", "epochs": 5.0, "omega": 1, "node_weights": None}}})
    assert spec.seeds == [3] and spec.datasets == ["derisi_FUN"] and spec.preset == "medium"
    assert spec.methods == {"w": {"lr": 1e-4, "epochs": 5, "omega": 1.0, "node_weights": None}}
    assert spec.threads_per_cell == 1 and spec.source == "<spec>"


def test_grid_labels_and_cells():
    spec = parse_spec({**BASE, "preset": "fast", "seeds": [0, 1],
                       "methods": {"plain": None, "focal": {"node_weights": "class-wise", "focal": ["mean", "gated"],
                                                            "heads": [2, 4]}}})
    variants = spec.method_variants()
    assert [label for label, _ in variants] == [
        "plain", "focal (focal=mean, heads=2)", "focal (focal=mean, heads=4)", "focal (focal=gated, heads=2)",
        "focal (focal=gated, heads=4)"]
    assert variants[4][1] == {"node_weights": "class-wise", "focal": "gated", "heads": 4}
    cells = expand(spec)
    assert len(cells) == 10 and len({c.key for c in cells}) == 10
    first = cells[0]
    assert (first.dataset, first.method, first.seed, first.overrides) == ("derisi_FUN", "plain", 0, {})
    # the full config: published settings through the fast preset, the seed, one thread, the preset's name
    assert first.config["batch_size"] == 128 and first.config["epochs"] == 67 and first.config["lr"] == pytest.approx(1e-3)
    assert first.config["seed"] == 0 and first.config["threads"] == 1 and first.config["preset"] == "fast"
    assert cells[-1].config["heads"] == 4 and cells[-1].config["focal"] == "gated"
    assert [c.key for c in expand(spec)] == [c.key for c in cells]  # keys are stable
    other = expand(spec.with_seeds([1]))
    assert [c.key for c in other] == [c.key for c in cells if c.seed == 1]


def test_named_specs():
    demo = load_spec(CONFIGS / "demo.yaml")
    assert (demo.name, demo.preset, demo.datasets, demo.seeds) == ("demo", "fast", ["derisi_FUN"], [0, 1, 2])
    assert demo.method_variants() == [("C-HMCNN", {}), ("rare-node weights", {"node_weights": "class-wise", "omega": 0.2}),
                                      ("rare-nodes switch", {"rare_nodes": True})]
    from hmlearn.demo import demo_spec

    assert dict(demo.method_variants()) == demo_spec()["methods"]  # `hmlearn demo` runs this file's sweep
    built = parse_spec(demo_spec(), "demo_spec()")
    assert (built.name, built.preset, built.datasets, built.seeds) == (demo.name, demo.preset, demo.datasets, demo.seeds)
    assert [c.key for c in expand(built)] == [c.key for c in expand(demo)]
    assert len(expand(demo)) == 9
    paper = load_spec(CONFIGS / "paper.yaml")
    assert paper.datasets == ["FUN"]
    labels = [label for label, _ in paper.method_variants()]
    assert len(labels) == 1 + 1 + 2 + 6 * 3
    assert labels[:4] == ["C-HMCNN", "over-sampling", "node weights (omega=0.25)", "node weights (omega=0.5)"]
    assert "node weights + focal (focal=epistemic_kl, heads=8)" in labels


def test_family_keywords_mean_the_datasets_found(monkeypatch):
    found = {"FUN": ["derisi_FUN", "spo_FUN"], "GO": []}
    monkeypatch.setattr(spec_module, "local_datasets", lambda family: found[family])
    spec = parse_spec({**BASE, "datasets": ["FUN", "derisi_FUN"]})
    assert sorted({c.dataset for c in expand(spec)}) == ["derisi_FUN", "spo_FUN"]
    with pytest.raises(SpecError, match=r"<spec>: datasets: 'GO' matches no dataset found locally"):
        expand(parse_spec({**BASE, "datasets": ["GO"]}))


def test_dataset_paths_are_read_from_the_spec_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "x.yaml"
    path.write_text("name: x\ndatasets: [data/toy.train.arff]\nmethods: {plain: {}}\n")
    (tmp_path / "sub" / "data").mkdir()
    (tmp_path / "sub" / "data" / "toy.train.arff").write_text(
        "@RELATION t\n@ATTRIBUTE x numeric\n@ATTRIBUTE c hierarchical 01,02\n@DATA\n1,01\n")
    cell = expand(load_spec(path))[0]
    assert cell.dataset == "data/toy.train.arff"  # as written: the key does not depend on where the project is
    assert cell.location == str(tmp_path / "sub" / "data" / "toy.train.arff")


def test_split_files(tmp_path):
    for name in ("a.train.arff", "a.valid.arff", "D_Train.arff", "E_trainvalid.arff"):
        (tmp_path / name).write_text("")
    assert split_files(tmp_path / "a.train.arff") == {
        "train": tmp_path / "a.train.arff", "valid": tmp_path / "a.valid.arff", "test": tmp_path / "a.test.arff"}
    assert split_files(tmp_path / "D_Train.arff")["test"] == tmp_path / "D_Test.arff"
    assert split_files(tmp_path / "E_trainvalid.arff") == {
        "train": tmp_path / "E_trainvalid.arff", "test": tmp_path / "E_test.arff"}
    with pytest.raises(Exception, match="'train' in its name"):
        split_files(tmp_path / "data.arff")


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("name: x\ndatasets: [derisi_FUN]\nmethods:\n  w: {omega: 0.2}\n  w: {omega: 0.3}\n")
    with pytest.raises(SpecError, match=r"twice.yaml:5: the key 'w' is given twice \(also at line 4\)"):
        load_spec(path)


def test_too_many_seeds_or_too_large_a_file_is_refused_before_work(tmp_path):
    with pytest.raises(SpecError, match="seeds: has 10001 entries, at most 10000 allowed"):
        parse_spec({"name": "x", "datasets": ["derisi_FUN"], "seeds": list(range(10_001)), "methods": {"m": {}}})
    big = tmp_path / "big.yaml"
    big.write_text("name: x\nseeds: [" + ", ".join(map(str, range(60_000))) + "]\n")
    with pytest.raises(SpecError, match="too large for a sweep spec"):
        load_spec(big)
