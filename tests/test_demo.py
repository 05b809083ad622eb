"""`hmlearn demo`'s table covers exactly the sweep it just ran, whatever else its runs folder holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from hmlearn import demo
from hmlearn.data.arff import write_arff
from hmlearn.data.synthetic import make_hmc_data, train_test_split


@pytest.fixture()
def tiny_arff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = make_hmc_data(n_samples=240, n_features=8, n_nodes=20, max_depth=3, signal=2.0, seed=0)
    train, test = train_test_split(data, 0.3, seed=0)
    write_arff(train, tmp_path / "data" / "tiny.train.arff")
    write_arff(test, tmp_path / "data" / "tiny.test.arff")
    entry = str((tmp_path / "data" / "tiny.train.arff").resolve())
    monkeypatch.setattr(demo, "_dataset_entry", lambda dataset, runs_dir: (entry, "tiny"))
    # two of the demo's methods are enough here (the third, --rare-nodes, trains twice per cell)
    monkeypatch.setattr(demo, "DEMO_METHODS", {k: v for k, v in demo.DEMO_METHODS.items() if "rare_nodes" not in v})
    return tmp_path / "runs"


def test_demo_after_another_preset_reports_only_its_own_runs(tiny_arff: Path):
    first = demo.run_demo(seeds=1, preset="fast", runs_dir=tiny_arff, executor="sequential")
    again = demo.run_demo(seeds=2, preset="medium", runs_dir=tiny_arff, executor="sequential")  # the folder keeps 'fast'
    for text, seeds in ((first, 1), (again, 2)):
        rows = [line.split() for line in text.splitlines() if line.startswith(("C-HMCNN", "rare-node weights"))]
        assert len(rows) == 2, text
        assert all(str(seeds) in row for row in rows), text  # the seeds column counts this sweep's runs only
    assert (tiny_arff / "report.html").is_file()
