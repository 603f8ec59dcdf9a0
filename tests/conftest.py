import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    """Every test runs in its own folder, so lightning_logs/ and outputs never land in the repo."""
    monkeypatch.chdir(tmp_path)
