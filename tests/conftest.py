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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One run of the `tiny` preset over the bundled sample (real pages), shared by the end-to-end tests."""
    import time

    from flows.config import load_config
    from flows.pipeline import run_pipeline

    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    run = tmp_path_factory.mktemp("runs") / "tiny"
    cfg = load_config(preset="tiny", environ={}, overrides={"output": str(run), "runner": {"workers": 2}})
    start = time.time()
    ledger = run_pipeline(cfg)
    return cfg, run, ledger, time.time() - start


@pytest.fixture(scope="session")
def sample_record_texts():
    """A function: record ids -> {record id: text extracted with plain trafilatura from the bundled sample WARC}, a
    reference independent of our reader and extractor; every id must be found."""
    return _extract_sample_records


def _extract_sample_records(record_ids) -> dict[str, str]:
    import trafilatura
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    texts = {}
    with open(Path(__file__).resolve().parents[1] / "corpus" / "sample_data" / "sample.warc.gz", "rb") as stream:
        for record in ArchiveIterator(stream, record_types=WarcRecordType.response):
            if record.record_id in record_ids:
                html = record.reader.read().decode("utf-8", errors="replace")
                texts[record.record_id] = trafilatura.extract(html, include_tables=True)
    assert set(texts) == set(record_ids)
    return texts
