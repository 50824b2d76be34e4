"""report.html on the tiny run: written, self-contained, every section there, hostile text escaped, missing parts
noted; and opened in a real headless browser (Debian's chromium, driven by playwright): no console error, every
figure rendered, a screenshot kept."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from corpus.shards import read_table, write_table
from flows.report import write_report

pytestmark = pytest.mark.slow

SECTIONS = ["funnel", "drops", "languages", "lengths", "signals", "keyphrases", "documents", "dedup", "tokenizer", "pretrain", "finetune"]
HOSTILE = '<script>alert(1)</script> $x^2$ & "quoted"'
HOSTILE_URL = 'javascript:alert(1)//"><img src=x onerror=alert(2)>%3Cscript%3Ealert(3)%3C/script%3E'
FINETUNE_METRICS = {
    "accuracy": 0.75,
    "macro_f1": 0.74,
    "majority_baseline": 0.5,
    "n_train": 600,
    "n_eval": 200,
    "epochs": 2,
    "best_epoch": 2,
    "labels": ["0", "1"],
    "history": [
        {"epoch": 1, "train_loss": 0.69, "accuracy": 0.6, "macro_f1": 0.58},
        {"epoch": 2, "train_loss": 0.52, "accuracy": 0.75, "macro_f1": 0.74},
    ],
}


def _copy_run(tiny_run, dst: Path) -> Path:
    """The session's run without its checkpoints (the report reads none), for tests that change it."""
    _, run, _, _ = tiny_run
    shutil.copytree(run, dst, ignore=shutil.ignore_patterns("trainer_state", "*.safetensors", "report"))
    return dst


def _rewrite(path: Path, table: pa.Table) -> None:
    """Write beside and rename: `table` may still be memory-mapped from `path`, which must not be truncated."""
    tmp = path.with_name(path.name + ".new")
    write_table(tmp, table)
    os.replace(tmp, path)


def _make_hostile(run: Path) -> None:
    """Every document's title and url, and one rejected row's detail, set to markup; a fine-tuning result added."""
    shard = min((run / "documents").glob("shard-*.arrow"))
    docs = read_table(shard)
    n = docs.num_rows
    docs = docs.set_column(docs.schema.get_field_index("title"), "title", pa.array([HOSTILE] * n, pa.string()))
    docs = docs.set_column(docs.schema.get_field_index("url"), "url", pa.array([HOSTILE_URL] * n, pa.string()))
    _rewrite(shard, docs)
    part = next(p for p in sorted((run / "rejected").glob("*/part-*.arrow")) if read_table(p).num_rows)
    rejected = read_table(part)
    detail = pc.if_else(pa.array([i == 0 for i in range(rejected.num_rows)]), HOSTILE, rejected.column("detail"))
    _rewrite(part, rejected.set_column(rejected.schema.get_field_index("detail"), "detail", detail))
    (run / "finetune").mkdir(exist_ok=True)
    (run / "finetune" / "metrics.json").write_text(json.dumps(FINETUNE_METRICS))


@pytest.fixture(scope="module")
def hostile_report(tiny_run, tmp_path_factory):
    """(run copy with hostile text, its report path, seconds the report took)."""
    run = _copy_run(tiny_run, tmp_path_factory.mktemp("report") / "run")
    _make_hostile(run)
    start = time.time()
    path = write_report(run)
    return run, path, time.time() - start


def _sections(page: str) -> dict[str, str]:
    import re

    return dict(re.findall(r'<section id="(\w+)">(.*?)</section>', page, re.DOTALL))


def test_report_is_self_contained_and_has_every_section(hostile_report):
    run, path, seconds = hostile_report
    assert path == run / "report" / "report.html" and path.is_file()
    page = path.read_text()
    sections = _sections(page)
    assert list(sections) == SECTIONS
    for key in ("funnel", "languages", "lengths", "signals", "tokenizer", "pretrain", "finetune"):
        assert "data:image/png;base64," in sections[key], f"{key} has no figure"
        assert 'class="note"' not in sections[key], sections[key][:500]
    assert "<table>" in sections["keyphrases"] and "<table>" in sections["documents"]
    # nothing to load: no script at all, no remote source, a policy that forbids both
    lowered = page.lower()
    assert "<script" not in lowered
    for attribute in ("src=", "href="):
        for quote in ('"', "'"):
            assert f"{attribute}{quote}http" not in lowered and f"{attribute}{quote}//" not in lowered
    assert "default-src 'none'" in page
    # the numbers behind it
    stats = json.loads((run / "report" / "stats.json").read_text())
    ledger = json.loads((run / "manifest.json").read_text())
    assert [s["name"] for s in stats["sections"]["funnel"]["stages"]] == [s["name"] for s in ledger["stages"]]
    assert stats["sections"]["tokenizer"]["bytes_per_token"] > 1
    assert stats["sections"]["signals"]["n_words"]["thresholds"] == {"min_words": 50, "max_words": 100_000}
    assert stats["sections"]["finetune"]["accuracy"] == 0.75
    assert seconds < 20, f"the report took {seconds:.1f} s"


def test_hostile_titles_urls_and_details_are_escaped(hostile_report):
    _, path, _ = hostile_report
    page = path.read_text()
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(3)" not in page  # percent-escapes are decoded for reading, then escaped
    assert html_escaped(unquote(HOSTILE_URL)) in _sections(page)["documents"]
    assert html_escaped(HOSTILE) in _sections(page)["drops"]
    assert 'href="javascript' not in page.lower()


def html_escaped(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_missing_and_broken_parts_become_notes(tiny_run, tmp_path):
    run = _copy_run(tiny_run, tmp_path / "run")
    for folder in ("model", "tokens"):  # a run made with --to tokenizer
        shutil.rmtree(run / folder)
    ledger = json.loads((run / "manifest.json").read_text())
    ledger["stages"] = [s for s in ledger["stages"] if s["name"] not in ("tokens", "pretrain")]
    (run / "manifest.json").write_text(json.dumps(ledger))
    (run / "dedup" / "clusters.arrow").write_bytes(b"not an arrow file")
    out = write_report(run, tmp_path / "elsewhere" / "run.html")
    assert out == tmp_path / "elsewhere" / "run.html" and not (run / "report").exists()
    sections = _sections(out.read_text())
    assert "No pretraining metrics" in sections["pretrain"]
    assert "No tokens/" in sections["tokenizer"]
    assert "could not be drawn" in sections["dedup"]
    assert "data:image/png" in sections["funnel"]
    stats = json.loads((tmp_path / "elsewhere" / "run.stats.json").read_text())
    assert set(stats["notes"]) >= {"pretrain", "tokenizer", "dedup", "finetune"}


# --- in a real browser -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing (as root), else the browser test is skipped."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path) and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "chromium"]
        try:
            if subprocess.run(install, check=False, env=env, capture_output=True, timeout=900).returncode:
                subprocess.run(["apt-get", "update"], check=False, env=env, capture_output=True, timeout=300)
                subprocess.run(install, check=False, env=env, capture_output=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if not os.path.exists(path):
        pytest.skip(
            "chromium is not installed and `apt-get install -y chromium` could not install it (needs root and a Debian package mirror)"
        )
    return path


def test_report_renders_in_headless_chromium(hostile_report, chromium, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    _, path, _ = hostile_report
    errors, requests = [], []
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(path.as_uri(), wait_until="load")
            figures = page.eval_on_selector_all(
                "img, svg",
                """nodes => nodes.map(n => {
                    const box = n.getBoundingClientRect();
                    return {tag: n.tagName, complete: n.complete ?? true, natural: n.naturalWidth ?? box.width,
                            width: box.width, height: box.height};
                })""",
            )
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    print(f"screenshot: {shot}")
    assert not errors, errors
    assert [u for u in requests if not u.startswith(("file://", "data:"))] == []
    assert len(figures) == path.read_text().count("<img ") >= 9, figures  # every section of this run has its figure
    for figure in figures:
        assert figure["complete"] and figure["natural"] > 0 and figure["width"] > 0 and figure["height"] > 0, figure
    assert shot.stat().st_size > 10_000
