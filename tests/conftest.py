import os
from pathlib import Path

import pytest

SHARED_HINT = "set CORPUSFORGE_SHARED_DATA=/path/to/shared/data to run them"
_NEEDING = pytest.StashKey[tuple]()  # (tests needing the data, tests collected, where it was looked for)


def shared_data_path() -> Path:
    """Where the real test data is looked for: ../shared/data next to the clone; env CORPUSFORGE_SHARED_DATA
    overrides."""
    return Path(os.environ.get("CORPUSFORGE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real test data folder, or skip."""
    path = shared_data_path()
    if not path.is_dir():
        pytest.skip(f"real test data not found at {path} ({SHARED_HINT})")
    return path


# --- said at the top of a run without the data, not only in the skip reasons at the end ---------------------------


def pytest_report_header(config) -> str:
    path = shared_data_path()
    if path.is_dir():
        return f"corpusforge real test data: {path}"
    return f"corpusforge real test data: not found at {path}; the tests that need it are skipped ({SHARED_HINT})"


def pytest_collection_modifyitems(config, items) -> None:
    """Without the data, the tests that need it (the `shared_data` fixture, directly or through another fixture)
    are marked skipped now, so they start no expensive fixture first, and counted for the line below."""
    path = shared_data_path()
    if path.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real test data not found at {path} ({SHARED_HINT})")
    needing = [item for item in items if "shared_data" in getattr(item, "fixturenames", ())]
    for item in needing:
        item.add_marker(skip)
    config.stash[_NEEDING] = (len(needing), len(items), path)


def _needing_line(config) -> str | None:
    needing, total, path = config.stash.get(_NEEDING, (0, 0, None))
    if not needing:
        return None
    return f"{needing} of {total} tests need the real test data, not found at {path}, and are skipped: {SHARED_HINT}"


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session) -> None:
    line = _needing_line(session.config)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if line and reporter is not None:
        reporter.write_line(line, yellow=True, bold=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    line = _needing_line(config)
    if line:
        terminalreporter.write_line(line, yellow=True, bold=True)


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
