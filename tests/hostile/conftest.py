"""Fixtures of the hostile-input suite; tests/conftest.py's (`shared_data`) apply here too.

Each input runs in its own process (`hostile_run.run_bounded`): a crash, a hang or a memory blow-up then shows as
that input's failure, and its peak RSS is its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def malformed_dir(shared_data) -> Path:
    """../shared/data/malformed/, or skip."""
    path = shared_data / "malformed"
    if not path.is_dir():
        pytest.skip(f"the malformed inputs are not at {path}")
    return path
