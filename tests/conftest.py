"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mini_ndec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small mini-NDEC build (seed 0), made once per test session."""
    from hf_asl.mini_ndec import build_mini_ndec

    out = tmp_path_factory.mktemp("mini_ndec")
    build_mini_ndec(out, size="small", seed=0, progress=False)
    return out
