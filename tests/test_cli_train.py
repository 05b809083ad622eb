from __future__ import annotations

import numpy as np
import pandas as pd
from click.testing import CliRunner

from hmlearn.cli import main
from hmlearn.data.arff import write_arff
from hmlearn.data.synthetic import make_hmc_data, train_test_split

from .conftest import requires_shared


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_train_evaluate_predict_on_own_arff(tmp_path):
    train, test = train_test_split(make_hmc_data(n_samples=240, n_features=6, n_nodes=15, signal=3.0, seed=3), 0.25)
    write_arff(train, tmp_path / "train.arff")
    write_arff(test, tmp_path / "test.arff")
    ckpt = tmp_path / "model.ckpt"
    result = run("train", tmp_path / "train.arff", "--test", tmp_path / "test.arff", "--epochs", 3,
                 "--hidden-dim", 16, "--batch-size", 16, "--lr", 3e-3, "--out", ckpt, "--quiet")
    assert result.exit_code == 0, result.output
    assert ckpt.is_file() and "au_prc" in result.output and "coherent" in result.output

    result = run("evaluate", ckpt, tmp_path / "test.arff", "--per-node", tmp_path / "nodes.csv", "--breakdown")
    assert result.exit_code == 0, result.output
    assert "recall (percent) by depth" in result.output
    table = pd.read_csv(tmp_path / "nodes.csv")
    assert len(table) == int(train.hierarchy.evaluated.sum())
    assert {"node", "recall", "f1", "mean_uncertainty_predictive"} <= set(table.columns)
    assert table["mean_uncertainty_predictive"].between(0, 1).all()

    features = pd.DataFrame(test.X, columns=[f"x{i}" for i in range(6)])
    features.insert(0, "id", [f"s{i}" for i in range(len(test))])
    features.to_csv(tmp_path / "features.csv", index=False)
    result = run("predict", ckpt, tmp_path / "features.csv", "--out", tmp_path / "pred.csv")
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(tmp_path / "pred.csv", keep_default_na=False)
    assert list(predictions.columns) == ["id", "labels", "probabilities"] and len(predictions) == len(test)
    assert predictions["id"][0] == "s0"  # the id column keeps its name
    row = predictions.iloc[0]
    labels, probs = row["labels"].split(";"), [float(p) for p in row["probabilities"].split(";")]
    assert len(labels) == len(probs) and all(p >= 0.5 for p in probs)

    result = run("predict", ckpt, tmp_path / "features.csv", "--out", tmp_path / "pred.parquet")
    assert result.exit_code == 0 and len(pd.read_parquet(tmp_path / "pred.parquet")) == len(test)


def test_predict_with_wrong_feature_count_is_one_line(tmp_path):
    train, _ = train_test_split(make_hmc_data(n_samples=80, n_features=4, n_nodes=10, seed=1), 0.25)
    write_arff(train, tmp_path / "train.arff")
    ckpt = tmp_path / "m.ckpt"
    assert run("train", tmp_path / "train.arff", "--epochs", 1, "--hidden-dim", 8, "--out", ckpt, "--quiet").exit_code == 0
    pd.DataFrame({"a": [1.0], "b": [2.0]}).to_csv(tmp_path / "bad.csv", index=False)
    result = run("predict", ckpt, tmp_path / "bad.csv", "--out", tmp_path / "p.csv")
    assert result.exit_code == 2
    assert "bad.csv: missing feature column(s) 'x0', 'x1', 'x2', 'x3'; the model was trained on them" in result.output
    assert not (tmp_path / "p.csv").exists()
    result = run("evaluate", tmp_path / "missing.ckpt", tmp_path / "train.arff")
    assert result.exit_code == 2 and "no such checkpoint file" in result.output


@requires_shared
def test_train_registry_dataset_uses_published_hyperparameters(tmp_path):
    from hmlearn.training.checkpoint import load_checkpoint

    result = run("train", "derisi_FUN", "--preset", "fast", "--epochs", 1, "--hidden-dim", 32,
                 "--out", tmp_path / "d.ckpt", "--quiet")
    assert result.exit_code == 0, result.output
    assert "batch_size=128" in result.output and "lr=0.001" in result.output  # the fast preset of the published
    config = load_checkpoint(tmp_path / "d.ckpt")[0].config
    assert (config.batch_size, config.lr, config.dropout, config.hidden_dim, config.epochs) == (128, 1e-3, 0.7, 32, 1)
    assert "trainvalid" in result.output and "1275 samples" in result.output


def test_rare_node_options_are_recorded_in_the_checkpoint(tmp_path):
    from hmlearn.training.checkpoint import load_checkpoint

    train, _ = train_test_split(make_hmc_data(n_samples=80, n_features=4, n_nodes=10, seed=1), 0.25)
    write_arff(train, tmp_path / "train.arff")
    ckpt = tmp_path / "m.ckpt"
    result = run("train", tmp_path / "train.arff", "--epochs", 1, "--hidden-dim", 8, "--out", ckpt, "--quiet",
                 "--heads", 2, "--node-weights", "binary", "--omega", 0.5, "--weight-side", "positive",
                 "--descendant-counts", "--negative-weights", "--focal", "gated", "--focal-k", 1, "--focal-min", 0.1)
    assert result.exit_code == 0, result.output
    config = load_checkpoint(ckpt)[0].config
    assert (config.heads, config.node_weights, config.omega, config.weight_side) == (2, "binary", 0.5, "positive")
    assert (config.descendant_counts, config.negative_weights) == (True, True)
    assert (config.focal, config.focal_k, config.focal_min) == ("gated", 1.0, 0.1)


def test_a_table_model_keeps_its_training_positives_for_the_rare_node_analysis(tmp_path):
    """evaluate --breakdown / --per-node on one's own table: frequency buckets, recall_rare and the training
    positives per node come from the checkpoint (the table's training rows are not at hand there)."""
    data = make_hmc_data(n_samples=200, n_features=4, n_nodes=12, max_depth=2, signal=3.0, seed=4)
    roots = {data.hierarchy.nodes[i] for i in data.hierarchy.roots}
    frame = pd.DataFrame(data.X, columns=[f"f{i}" for i in range(4)])
    frame["labels"] = [";".join(n for n in data.hierarchy.labels_of(y) if n not in roots) or "n1" for y in data.Y]
    frame.iloc[:150].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[150:].to_csv(tmp_path / "test.csv", index=False)
    ckpt = tmp_path / "model.ckpt"
    result = run("train", tmp_path / "train.csv", "--epochs", 2, "--hidden-dim", 8, "--batch-size", 16,
                 "--out", ckpt, "--quiet")
    assert result.exit_code == 0, result.output
    result = run("evaluate", ckpt, tmp_path / "test.csv", "--breakdown", "--per-node", tmp_path / "nodes.csv")
    assert result.exit_code == 0, result.output
    assert "recall_rare" in result.output and "by training positives" in result.output
    table = pd.read_csv(tmp_path / "nodes.csv")
    assert "train_positives" in table.columns and table["train_positives"].sum() > 0


def test_a_training_log_written_to_a_file_has_one_line_per_epoch_and_a_summary(tmp_path):
    import subprocess
    import sys

    frame = pd.DataFrame({"x1": [1, 2, 3, 0.5, 1.5, 2.5], "x2": [2, 3, 1, 2, 1, 2],
                          "labels": ["01/01", "02", "01", "02/01", "01/01", "02"]})
    frame.to_csv(tmp_path / "my.csv", index=False)
    with open(tmp_path / "log.txt", "w") as log:
        done = subprocess.run([sys.executable, "-m", "hmlearn.cli", "train", str(tmp_path / "my.csv"), "--epochs", "3",
                               "--hidden-dim", "8", "--out", str(tmp_path / "m.ckpt")], stdout=log, stderr=log)
    assert done.returncode == 0
    text = (tmp_path / "log.txt").read_text()
    assert "\r" not in text and "TrainConfig(" not in text
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("epoch ")] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "settings (other than the defaults): hidden_dim=8, epochs=3" in text
    assert lines[-1].startswith("trained in ") and "(3 epochs, final loss " in lines[-1]


def test_train_refuses_to_overwrite_a_checkpoint_without_force(tmp_path):
    train, _ = train_test_split(make_hmc_data(n_samples=80, n_features=4, n_nodes=10, seed=1), 0.25)
    write_arff(train, tmp_path / "train.arff")
    ckpt = tmp_path / "model.ckpt"
    args = ["train", tmp_path / "train.arff", "--epochs", 1, "--hidden-dim", 8, "--out", ckpt, "--quiet"]
    assert run(*args).exit_code == 0
    before = ckpt.read_bytes()
    again = run(*args)
    assert again.exit_code == 2 and f"{ckpt} already exists; --force replaces it" in again.output
    assert ckpt.read_bytes() == before
    assert run(*args, "--force", "--seed", 1).exit_code == 0 and ckpt.read_bytes() != before


def test_predict_takes_the_training_table_matches_columns_by_name_and_names_a_missing_one(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(40, 3)), columns=["alpha", "beta", "gamma"])
    frame.insert(0, "gene", [f"g{i}" for i in range(40)])
    frame["labels"] = ["01/01" if a > 0 else "02" for a in frame["alpha"]]
    frame.to_csv(tmp_path / "train.csv", index=False)
    ckpt = tmp_path / "m.ckpt"
    assert run("train", tmp_path / "train.csv", "--epochs", 2, "--hidden-dim", 8, "--out", ckpt, "--quiet").exit_code == 0

    printed = run("predict", ckpt, tmp_path / "train.csv", "--out", "-")
    assert printed.exit_code == 0, printed.output
    lines = printed.stdout.splitlines()
    assert lines[0] == "gene,labels,probabilities" and lines[1].startswith("g0,") and len(lines) >= 41

    frame[["labels", "gamma", "gene", "beta", "alpha"]].to_csv(tmp_path / "shuffled.csv", index=False)
    for name in ("train", "shuffled"):
        assert run("predict", ckpt, tmp_path / f"{name}.csv", "--out", tmp_path / f"{name}.parquet").exit_code == 0
    same = [pd.read_parquet(tmp_path / f"{name}.parquet") for name in ("train", "shuffled")]
    pd.testing.assert_frame_equal(same[0], same[1])

    frame.drop(columns=["beta"]).to_csv(tmp_path / "missing.csv", index=False)
    missing = run("predict", ckpt, tmp_path / "missing.csv", "--out", tmp_path / "p.csv")
    assert missing.exit_code == 2 and "missing feature column(s) 'beta'" in missing.output
    frame.assign(delta=1.0).to_csv(tmp_path / "extra.csv", index=False)
    extra = run("predict", ckpt, tmp_path / "extra.csv", "--out", tmp_path / "p.csv")
    assert extra.exit_code == 2 and "column(s) 'delta' the model was not trained on" in extra.output
    assert run("predict", ckpt, tmp_path / "extra.csv", "--out", tmp_path / "p.jsonl", "--ignore-extra",
               "--wide").exit_code == 0
    wide = pd.read_json(tmp_path / "p.jsonl", lines=True)
    assert {"gene", "labels", "probabilities", "01/01", "02"} <= set(wide.columns)
    assert run("predict", ckpt, tmp_path / "train.csv", "--out", tmp_path / "p.xlsx").exit_code == 2


def test_evaluate_reads_a_table_with_its_columns_in_another_order_by_name(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["alpha", "beta", "gamma"])
    frame["labels"] = ["01/01" if a > 0 else "02" for a in frame["alpha"]]
    frame.to_csv(tmp_path / "train.csv", index=False)
    ckpt = tmp_path / "m.ckpt"
    assert run("train", tmp_path / "train.csv", "--epochs", 2, "--hidden-dim", 8, "--out", ckpt, "--quiet").exit_code == 0
    frame[["gamma", "labels", "alpha", "beta"]].to_csv(tmp_path / "shuffled.csv", index=False)
    scores = [run("evaluate", ckpt, tmp_path / name).output.splitlines()[2:] for name in ("train.csv", "shuffled.csv")]
    assert scores[0] == scores[1] and any(line.startswith("au_prc") for line in scores[0])


def test_a_mistyped_dataset_name_gets_a_suggestion_and_cuda_without_a_gpu_one_line(tmp_path):
    result = run("train", "derisi_FNU", "--epochs", 1)
    assert result.exit_code == 2 and "unknown dataset 'derisi_FNU'; did you mean derisi_FUN?" in result.output
    import torch

    if torch.cuda.is_available():
        return
    train, _ = train_test_split(make_hmc_data(n_samples=60, n_features=4, n_nodes=8, seed=1), 0.25)
    write_arff(train, tmp_path / "t.arff")
    assert run("train", tmp_path / "t.arff", "--epochs", 1, "--hidden-dim", 8, "--out", tmp_path / "m.ckpt",
               "--quiet").exit_code == 0
    for command in (["predict", tmp_path / "m.ckpt", tmp_path / "t.arff", "--out", "-"],
                    ["evaluate", tmp_path / "m.ckpt", tmp_path / "t.arff"]):
        result = run(*command, "--device", "cuda")
        assert result.exit_code == 2 and "CUDA is not available" in result.output.strip().splitlines()[-1]


def test_the_metrics_table_says_each_unit(tmp_path):
    train, test = train_test_split(make_hmc_data(n_samples=80, n_features=4, n_nodes=10, seed=2), 0.25)
    write_arff(train, tmp_path / "train.arff")
    write_arff(test, tmp_path / "test.arff")
    result = run("train", tmp_path / "train.arff", "--test", tmp_path / "test.arff", "--epochs", 1,
                 "--hidden-dim", 8, "--out", tmp_path / "m.ckpt", "--quiet")
    assert result.exit_code == 0, result.output
    units = {line.split()[0]: line.split()[-1] for line in result.output.splitlines()
             if line.split() and line.split()[0] in ("au_prc", "binary_ap", "recall", "f1")}
    assert units == {"au_prc": "fraction", "binary_ap": "fraction", "recall": "%", "f1": "%"}
