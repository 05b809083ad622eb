"""Images end to end through the command line: make-images -> train-images -> evaluate -> predict, and sweeps."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from hmlearn.cli import main
from hmlearn.data.synthetic_images import synthetic_image_hierarchy
from hmlearn.experiments.spec import SpecError, expand, parse_spec
from hmlearn.training.config import ENCODERS


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def metric(output: str, name: str) -> float:
    return float(re.search(rf"^{name}\s+([\d.]+)(?:\s+(?:fraction|%))?$", output, flags=re.MULTILINE).group(1))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    result = run("make-images", folder, "--n", 300, "--size", 32, "--seed", 1)
    assert result.exit_code == 0, result.output
    return folder


def test_cli_encoder_names_match_the_module():
    from hmlearn.nn.encoders import ENCODERS as MODULE_ENCODERS

    assert tuple(MODULE_ENCODERS) == ENCODERS


def test_train_images_then_evaluate_and_predict(images, tmp_path, monkeypatch):
    ckpt = tmp_path / "cnn.ckpt"
    monkeypatch.chdir(images)  # relative table and hierarchy paths; evaluate runs from elsewhere
    result = run("train-images", "labels.csv", "--hierarchy", "hierarchy.txt", "--encoder", "small-cnn",
                 "--image-size", 32, "--fine-tune", "--epochs", 6, "--batch-size", 32, "--heads", 2, "--quiet",
                 "--out", ckpt)
    monkeypatch.chdir(tmp_path)
    assert result.exit_code == 0, result.output
    assert ckpt.is_file() and not (tmp_path / "cnn.ckpt.state").exists()
    assert re.search(r"^coherent\s+True$", result.output, flags=re.MULTILINE)
    table = pd.read_csv(images / "labels.csv")
    hierarchy = synthetic_image_hierarchy()
    test_labels = hierarchy.encode([row.split(";") for row in table.loc[table["partition"] == "test", "labels"]])
    chance = test_labels[:, hierarchy.evaluated].mean()  # AU(PRC) of constant scores
    trained = metric(result.output, "au_prc")
    assert trained > chance + 0.25, (trained, chance)

    # evaluate reads the table as training did and finds the same test split and metrics
    result = run("evaluate", ckpt, images / "labels.csv", "--breakdown")
    assert result.exit_code == 0, result.output
    assert metric(result.output, "au_prc") == pytest.approx(trained, abs=1e-4)
    assert "recall (percent) by depth" in result.output

    # predict on the folder of images: one row per image, label sets closed upwards, coherent probabilities
    result = run("predict", ckpt, images / "images", "--out", tmp_path / "pred.csv")
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(tmp_path / "pred.csv", keep_default_na=False)
    assert len(predictions) == len(table) and predictions["sample"][0] == "img_0000.png"
    for labels, probabilities in zip(predictions["labels"], predictions["probabilities"]):
        if not labels:
            continue
        given = dict(zip(labels.split(";"), map(float, probabilities.split(";"))))
        for label, p in given.items():
            parent = label.rsplit("/", 1)[0]
            if parent != label:
                assert parent in given and given[parent] >= p - 1e-4, (label, given)
    assert predictions["labels"].str.len().gt(0).mean() > 0.5  # most images get some label


def test_predict_refuses_a_folder_for_a_tabular_model(tmp_path):
    from hmlearn.data.arff import write_arff
    from hmlearn.data.synthetic import make_hmc_data

    write_arff(make_hmc_data(n_samples=60, n_features=4, n_nodes=8, max_depth=2, seed=0), tmp_path / "t.arff")
    result = run("train", tmp_path / "t.arff", "--epochs", 1, "--quiet", "--out", tmp_path / "t.ckpt")
    assert result.exit_code == 0, result.output
    result = run("predict", tmp_path / "t.ckpt", tmp_path, "--out", tmp_path / "p.csv")
    assert result.exit_code == 2 and "is a folder; this model reads features from an ARFF, CSV or Parquet file" in result.output
    assert not (tmp_path / "p.csv").exists()


def test_limited_frozen_run_and_bad_inputs(images, tmp_path):
    result = run("train-images", images / "labels.csv", "--encoder", "small-cnn", "--image-size", 32,
                 "--train-fraction", 0.2, "--epochs", 2, "--batch-size", 16, "--quiet", "--out", tmp_path / "m.ckpt")
    assert result.exit_code == 0, result.output
    assert "train_fraction=0.2" in result.output

    broken = pd.read_csv(images / "labels.csv")
    broken.loc[3, "image"] = "images/missing.png"
    broken.to_csv(tmp_path / "broken.csv", index=False)
    result = run("train-images", tmp_path / "broken.csv", "--images", images, "--encoder", "small-cnn",
                 "--image-size", 32, "--out", tmp_path / "x.ckpt")
    assert result.exit_code == 2
    assert "1 of 300 image files do not exist" in result.output and "row 4: images/missing.png" in result.output
    assert not (tmp_path / "x.ckpt").exists()

    (tmp_path / "weights.pt").write_bytes(b"not a state dict")
    result = run("train-images", images / "labels.csv", "--encoder", "small-cnn", "--image-size", 32,
                 "--encoder-weights", tmp_path / "weights.pt", "--out", tmp_path / "y.ckpt")
    assert result.exit_code == 2 and "weights.pt" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "y.ckpt").exists()

    result = run("evaluate", tmp_path / "m.ckpt", images / "labels.csv", "--split", "valid")
    assert result.exit_code == 2 and "no 'valid' split; choose from train, test, all" in result.output


def test_sweep_over_an_image_dataset(images, tmp_path):
    spec = {
        "name": "images",
        "seeds": [0],
        "datasets": [{"name": "seafloor", "table": str(images / "labels.csv"), "image_size": 32}],
        "methods": {"plain": {"encoder": "small-cnn", "epochs": 2, "batch_size": 32, "train_fraction": [0.5, 1.0]},
                    "weights": {"encoder": "small-cnn", "epochs": 2, "batch_size": 32, "node_weights": "class-wise"}},
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    result = run("sweep", tmp_path / "spec.yaml", "--runs", tmp_path / "runs", "--quiet")
    assert result.exit_code == 0, result.output
    assert "3 of 3 cells done, 0 failed" in result.output
    assert "plain (train_fraction=0.5)" in result.output
    result = run("report", tmp_path / "runs", "--baseline", "plain (train_fraction=1)")
    assert result.exit_code == 0, result.output
    assert "seafloor" in (tmp_path / "runs" / "report.md").read_text()


def test_image_dataset_entries_are_validated_and_expanded(tmp_path):
    base = {"name": "s", "methods": {"m": {"encoder": "small-cnn"}}}
    with pytest.raises(SpecError, match=r"datasets\[0\]\.tabel: unknown key; did you mean table\?"):
        parse_spec({**base, "datasets": [{"name": "x", "tabel": "t.csv"}]})
    with pytest.raises(SpecError, match=r"datasets\[0\]\.image_size: must be at least 8"):
        parse_spec({**base, "datasets": [{"name": "x", "table": "t.csv", "image_size": 4}]})
    with pytest.raises(SpecError, match=r"methods\.m\.encoder: 'resnet51' is not one of .*did you mean resnet50\?"):
        parse_spec({**base, "methods": {"m": {"encoder": "resnet51"}}, "datasets": ["derisi_FUN"]})
    with pytest.raises(SpecError, match=r"methods\.m\.train_fraction: 0\.0 is out of range \(0, 1\]"):
        parse_spec({**base, "methods": {"m": {"train_fraction": 0.0}}, "datasets": ["derisi_FUN"]})

    spec = parse_spec({**base, "datasets": [{"name": "x", "table": "t.csv", "image_size": 64}, "derisi_FUN"],
                       "methods": {"m": {"encoder_alpha": [0.0, 0.5]}}, "preset": "fast"}, tmp_path / "s.yaml")
    cells = expand(spec)
    image_cells = [c for c in cells if c.dataset == "x"]
    assert [c.config["encoder_alpha"] for c in image_cells] == [0.0, 0.5]
    first = image_cells[0].config
    # the paper's image runs, whatever the preset; the image size from the entry; paths from the spec's folder
    assert (first["epochs"], first["batch_size"], first["lr"], first["encoder"], first["image_size"]) == (
        20, 128, 1e-3, "resnet50", 64)
    assert str(tmp_path / "t.csv") in image_cells[0].location
    # tabular cells keep their keys: fields added for images are left out at their defaults
    tabular = [c for c in cells if c.dataset == "derisi_FUN"][0].config
    assert "encoder" not in tabular and "train_fraction" not in tabular


def test_train_fraction_trains_on_the_stratified_rows():
    from hmlearn.data.splitting import training_fraction
    from hmlearn.data.synthetic import make_hmc_data
    from hmlearn.training.config import TrainConfig
    from hmlearn.training.fit import fit

    data = make_hmc_data(n_samples=200, n_features=5, n_nodes=12, seed=4)
    config = TrainConfig(hidden_dim=16, epochs=2, batch_size=16, seed=3, node_weights="class-wise")
    limited = fit(data.X, data.Y, data.hierarchy, config.updated(train_fraction=0.3), progress=False)
    rows = training_fraction(data.Y, data.hierarchy, 0.3, seed=3)
    direct = fit(data.X[rows], data.Y[rows], data.hierarchy, config, progress=False)
    assert 0 < len(rows) < 200
    assert np.array_equal(limited.predict_proba(data.X), direct.predict_proba(data.X))
