"""bench/scaling.py: the quick run has every field, dense and fast MCM agree on its hierarchies, the plot is written.

No timing assertions: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hmlearn.nn.constraint import METHODS, MaxConstraint, mc_loss

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import scaling

FIELDS = {"kind", "nodes", "edges", "nnz_R", "depth", "parents_per_node", "method", "device", "samples", "batch",
          "status", "reason", "time_s", "runs", "peak_mb", "memory_source", "initial_loss", "epoch_loss", "build_s"}


@pytest.fixture(scope="module")
def quick_rows() -> list[dict]:
    return scaling.run_scaling(quick=True)


def test_quick_run_has_every_field_and_a_row_per_cell(quick_rows):
    cells = {(r["kind"], r["nodes"], r["method"]) for r in quick_rows}
    assert cells == {(k, n, m) for k in scaling.KINDS for n in scaling.QUICK_SIZES for m in scaling.ALL_METHODS}
    for row in quick_rows:
        assert FIELDS <= set(row), FIELDS - set(row)
        assert row["status"] in ("ok", "skipped"), row
        if row["status"] == "ok":
            assert row["time_s"] > 0 and row["runs"] >= 1
            assert np.isfinite(row["initial_loss"]) and np.isfinite(row["epoch_loss"])
        else:
            assert row["method"] == "dense" and row["reason"] and row["time_s"] is None
    assert all(r["status"] == "ok" for r in quick_rows if r["method"] != "dense")
    dags = [r for r in quick_rows if r["kind"] == "dag" and r["nodes"] >= 200]
    assert all(r["edges"] > 1.4 * (r["nodes"] - 1) and r["depth"] >= 10 for r in dags)


def test_dense_memory_dwarfs_the_fast_method(quick_rows):
    """Dense holds (batch, N, N) tensors, levels (batch, N) ones: at 200 nodes that is 20 MB against ~1 MB."""
    peak = {(r["kind"], r["nodes"], r["method"]): r["peak_mb"] for r in quick_rows if r["status"] == "ok"}
    for kind in scaling.KINDS:
        assert peak[(kind, 200, "dense")] > 5 * max(peak[(kind, 200, "levels")], 1.0), kind
        assert peak[(kind, 1000, "levels")] > peak[(kind, 50, "levels")], kind


def test_every_mcm_method_trains_the_same_epoch(quick_rows):
    """Same seeds, same batches: the loss before and after an epoch is the same for dense and fast."""
    by_cell: dict = {}
    for row in quick_rows:
        if row["status"] == "ok" and row["method"] in METHODS:
            by_cell.setdefault((row["kind"], row["nodes"]), []).append(row)
    assert any(len(rows) == len(METHODS) for rows in by_cell.values())  # dense ran somewhere
    for rows in by_cell.values():
        for row in rows[1:]:
            assert row["initial_loss"] == pytest.approx(rows[0]["initial_loss"], rel=1e-6)
            assert row["epoch_loss"] == pytest.approx(rows[0]["epoch_loss"], rel=1e-4)


@pytest.mark.parametrize("kind", scaling.KINDS)
@pytest.mark.parametrize("nodes", scaling.QUICK_SIZES)
def test_dense_and_fast_agree_on_the_quick_hierarchies(kind, nodes):
    hierarchy = scaling.synthetic_hierarchy(kind, nodes)
    g = torch.Generator().manual_seed(nodes)
    p = torch.rand(8, nodes, generator=g, dtype=torch.float64)
    y = torch.as_tensor(hierarchy.close(torch.rand(8, nodes, generator=g).numpy() < 0.02), dtype=torch.float64)
    results = {}
    for method in METHODS:
        q = p.clone().requires_grad_(True)
        module = MaxConstraint(hierarchy, method)
        out = module(q)
        loss = mc_loss(q, y, module).mean()
        (grad,) = torch.autograd.grad(loss, q)
        results[method] = (out.detach(), loss.detach(), grad)
    dense = results["dense"]
    for method in METHODS:
        assert torch.equal(results[method][0], dense[0]), method  # a max selects: exactly equal
        torch.testing.assert_close(results[method][1], dense[1], rtol=1e-12, atol=0)
        torch.testing.assert_close(results[method][2], dense[2], rtol=1e-10, atol=1e-14)


def test_synthetic_hierarchies_are_seeded_and_shaped_like_their_kind():
    tree, dag = scaling.synthetic_hierarchy("tree", 3000), scaling.synthetic_hierarchy("dag", 3000)
    assert tree.is_tree and len(tree) == 3000 and tree.max_depth == len(scaling.TREE_PROFILE)
    assert not dag.is_tree and len(dag) == 3000 and dag.max_depth == len(scaling.DAG_PROFILE)
    assert 1.5 <= scaling.hierarchy_facts(dag)["parents_per_node"] <= 2.0
    assert scaling.synthetic_hierarchy("dag", 3000) == dag
    assert scaling.synthetic_hierarchy("dag", 3000, seed=1) != dag


def test_write_plot_and_report(quick_rows, tmp_path):
    path = scaling.write_plot(quick_rows, tmp_path / "plots" / "scaling.png")
    assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = scaling.markdown_report(quick_rows)
    assert "| kind | nodes | edges |" in report and "skipped" in report and "mem ~ nodes^" in report
    fits = scaling.fit_exponents(quick_rows)
    assert {(f["kind"], f["method"]) for f in fits} >= {(k, "levels") for k in scaling.KINDS}
