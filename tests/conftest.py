from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder, so ``runs/`` written by a test never touches the checkout."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
