"""Shared fixtures: where the benchmark data is, and an isolated cache per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "hmc_data"

requires_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/hmc_data is not beside the checkout")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Tests never read or write the user's cache and never reach the network."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HMLEARN_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.delenv("HMLEARN_DATA", raising=False)
    mp.setenv("HMLEARN_OFFLINE", "1")
    yield
    mp.undo()
