"""Shared fixtures: where the research data lives, and tiny generated inputs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


def _data_dir() -> Path:
    return Path(os.environ.get("FACEGATE_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """$FACEGATE_DATA (default ../shared/data). Skips when absent; under CI=true it fails instead."""
    d = _data_dir()
    if not (d / "lfw").is_dir():
        msg = f"face data not found at {d}: set FACEGATE_DATA to the shared data folder"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return d
