import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real test data folder (/work/shared/data; env CORPUSFORGE_SHARED_DATA overrides), or skip."""
    path = Path(os.environ.get("CORPUSFORGE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    if not path.is_dir():
        pytest.skip(f"real test data not found at {path} (set CORPUSFORGE_SHARED_DATA)")
    return path
