"""bench/suite.py --quick: every section reported, numbers consistent, the acceptance targets named.

No timed assertions: the figures of a quick run on a shared machine mean little; the test checks
that the suite runs end to end and that what it writes agrees with itself.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("mcm", "epoch", "heads", "objective", "load", "predict", "scaling")
NEEDS_DATA = ("mcm", "epoch", "heads", "objective", "load", "predict")
TARGETS = (
    "fast MCM forward + backward >= 100x faster than dense at batch 64",
    "fast MCM runs at batch 512 where dense cannot (memory)",
    "H = 8 vectorised heads cost <= 3x one head per epoch",
    "H = 8 vectorised heads faster than a loop over 8 single-head models",
    "warm-cache load of every benchmark dataset < 0.2 s",
    "prediction on spo_GO's test split < 1 s",
)


@pytest.fixture(scope="module")
def perf(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("perf")
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "suite.py"), "--quick", "--out", str(out)],
                         capture_output=True, text=True, timeout=900, cwd=ROOT, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return json.loads((out / "perf.json").read_text()), (out / "perf.md").read_text()


def test_every_section_is_reported(perf):
    results, _ = perf
    assert list(results["sections"]) == list(SECTIONS)
    for name, section in results["sections"].items():
        assert not section.get("error"), f"{name}: {section['error']}"
        assert section["seconds"] > 0
        if SHARED_DATA.is_dir() and name in NEEDS_DATA:
            assert section["rows"], f"{name}: no rows although the data is at hand"
        if name == "scaling" and not section.get("skipped"):
            assert section["raw"], "scaling ran but returned no rows"


def test_machine_is_described(perf):
    results, _ = perf
    machine = results["machine"]
    for key in ("cpu", "cpu_count", "memory_gb", "torch", "torch_threads_default", "device"):
        assert machine.get(key) not in (None, ""), key
    assert results["settings"]["quick"] is True


def test_figures_are_positive_and_ratios_agree(perf):
    results, _ = perf
    rows = [row for section in results["sections"].values() for row in section["rows"]]
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "row ids must be unique"
    for row in rows:
        assert row["measured_value"] is not None and row["measured_value"] > 0, row
        if row["baseline_value"] is None:
            assert row["ratio"] is None and row.get("notes"), f"{row['id']}: a missing baseline needs a reason"
            continue
        assert row["baseline_value"] > 0, row
        assert math.isclose(row["ratio"], row["baseline_value"] / row["measured_value"], rel_tol=1e-9), row
        for key in ("cost", "overhead"):
            if key in row:
                expected = row["measured_value"] / row["baseline_value"] - (key == "overhead")
                assert math.isclose(row[key], expected, rel_tol=1e-9, abs_tol=1e-12), row
    for section in results["sections"].values():
        for raw in section["raw"]:
            for key, value in raw.items():
                if key.endswith("_s") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    assert value >= 0, (key, raw)


def test_streaming_floor_follows_from_the_parameters(perf):
    """The H = 8 rows' floor: 40 bytes per parameter per step at the measured bandwidth, over one head's epoch."""
    from hmlearn.data.registry import DATASETS

    results, _ = perf
    rows = [row for row in results["sections"]["heads"]["rows"] if "floor_cost" in row]
    if SHARED_DATA.is_dir():
        assert rows, "no H = 8 row with a streaming floor"
    for row in rows:
        spec = DATASETS[row.get("dataset", "derisi_FUN")]
        sizes = [spec.n_features, spec.hidden_dim, spec.hidden_dim, spec.n_outputs]
        per_head = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        assert row["parameters"] == row["heads"] * per_head, row
        assert row["bandwidth_gbs"] > 0
        seconds = row["parameters"] * 40 / (row["bandwidth_gbs"] * 1e9) * row["steps_per_epoch"]
        assert math.isclose(row["floor_cost"], seconds / row["baseline_value"], rel_tol=1e-9), row


def test_peak_memory_is_measured(perf):
    results, _ = perf
    peaks = [row[key] for section in results["sections"].values() for row in section["rows"]
             for key in ("baseline_peak_mb", "measured_peak_mb") if key in row]
    if SHARED_DATA.is_dir():
        assert peaks, "no peak memory figure at all"
    assert all(value >= 0 for value in peaks)
    assert any(value > 0 for value in peaks) or not peaks


def test_markdown_has_every_table_and_target(perf):
    results, text = perf
    assert results["settings"]["command"] in text
    for section in results["sections"].values():
        assert f"## {section['title']}\n" in text
        if section["rows"]:
            assert section["rows"][0]["case"] in text
    lines = [line for line in text.splitlines() if line.startswith("- **")]
    for target in TARGETS:
        matching = [line for line in lines if target in line]
        assert len(matching) == 1, target
        assert any(state in matching[0] for state in ("**met**", "**NOT met**", "**not measured**"))
    assert [t["target"].split(": ", 1)[-1] for t in results["acceptance"]] == list(TARGETS)


def test_cuda_requested_without_a_gpu_is_a_clear_error(tmp_path: Path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: --device cuda is valid here")
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "suite.py"), "--device", "cuda", "--sections", "load",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert run.returncode == 2 and "CUDA is not available" in run.stderr
    assert not (tmp_path / "perf.json").exists()


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/hmc_data")
def test_load_benchmark_finds_data_kept_only_in_the_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Downloads go to the user cache; the benchmark's throwaway parsed cache must not hide them."""
    import shutil

    from hmlearn.data import store

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import load_speed

    target = tmp_path / "cache" / "hmc_data" / "datasets_FUN" / "derisi_FUN"
    shutil.copytree(SHARED_DATA / "datasets_FUN" / "derisi_FUN", target)
    monkeypatch.setenv("HMLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HMLEARN_DATA", raising=False)
    monkeypatch.setattr(store, "_CHECKOUT_SHARED", tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path)
    assert [root for root in store.data_roots() if root.is_dir()] == [tmp_path / "cache" / "hmc_data"]
    result = load_speed.measure_load("derisi_FUN", repeats=1)
    assert result["samples"] == load_speed.load_all_splits("derisi_FUN") > 0
    assert "HMLEARN_DATA" not in os.environ and os.environ["HMLEARN_CACHE"] == str(tmp_path / "cache")
