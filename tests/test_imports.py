"""Import direction (DESIGN.md section 2): corpus <- tokenizer <- training, flows imports all three.

Two checks. The source check parses every .py file of the three libraries with `ast` and finds every import in it,
at any depth: an import inside a function still makes the dependency, it only delays it. The runtime check imports
the libraries in a clean interpreter and looks at `sys.modules`: no Prefect anywhere, and no torch unless the caller
trains.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What each library must never import (top-level package names). torch is checked at runtime, below: a library
# may import it lazily in the function that trains.
FORBIDDEN = {
    "corpus": frozenset({"tokenizer", "training", "flows", "prefect"}),
    "tokenizer": frozenset({"training", "flows", "prefect"}),
    "training": frozenset({"flows", "prefect"}),
}


def module_name(path: Path, root: Path = ROOT) -> str:
    """corpus/sources/crawl.py -> corpus.sources.crawl, corpus/__init__.py -> corpus."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(name: str | None, level: int, module: str, is_package: bool) -> str:
    """The absolute module a `from {'.' * level}{name} import ...` in `module` refers to."""
    if level == 0:
        return name or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 >= len(package):
        return "." * level + (name or "")  # climbs out of the top-level package: kept relative, flagged below
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports_of(source: str, module: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`: statements at any depth (functions, classes,
    `if TYPE_CHECKING:`, try/except), relative imports resolved, and `importlib.import_module("...")` /
    `__import__("...")` calls with a literal name."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, _absolute(node.module, node.level, module, is_package)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func, name = node.func, node.args[0].value
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(name, str):
                level = len(name) - len(name.lstrip("."))
                yield node.lineno, _absolute(name[level:], level, module, is_package) if level else name


def violations(source: str, module: str, is_package: bool = False, where: str = "") -> list[str]:
    """One message, "where:line: corpus.x imports prefect", per import that goes against the direction."""
    forbidden = FORBIDDEN.get(module.split(".")[0], frozenset())
    found = []
    for line, name in sorted(imports_of(source, module, is_package)):
        top = name.split(".")[0]
        if top in forbidden or name.startswith("."):
            found.append(f"{where or module}:{line}: {module} imports {name}")
    return found


def library_files() -> list[Path]:
    return sorted(p for package in FORBIDDEN for p in (ROOT / package).rglob("*.py"))


# --- the checker itself, on literal sources ---------------------------------------------------------------------


def test_checker_finds_forbidden_imports_at_any_depth():
    source = """
import json
from corpus.document import Document

def train_later():
    import prefect
    from training.pretrain import lr_at
    return lr_at

class Lazy:
    def load(self):
        import importlib
        return importlib.import_module("flows.pipeline")

if False:
    from tokenizer import encode
"""
    assert violations(source, "corpus.example") == [
        "corpus.example:6: corpus.example imports prefect",
        "corpus.example:7: corpus.example imports training.pretrain",
        "corpus.example:13: corpus.example imports flows.pipeline",
        "corpus.example:16: corpus.example imports tokenizer",
    ]


def test_checker_follows_the_layers_and_relative_imports():
    assert violations("from training import pretrain\nimport flows.cli\n", "tokenizer.train") == [
        "tokenizer.train:1: tokenizer.train imports training",
        "tokenizer.train:2: tokenizer.train imports flows.cli",
    ]
    assert violations("def f():\n    __import__('prefect')\n", "training.model") == [
        "training.model:2: training.model imports prefect"
    ]
    # allowed: downward imports, relative imports inside the package, names that only start like a layer's
    allowed = "import corpus.shards\nfrom tokenizer.encode import token_stream\nimport torch\nimport trainingwheels\n"
    assert violations(allowed, "training.data") == []
    assert violations("from . import shards\nfrom ..dedup import exact\n", "corpus.sources.crawl") == []
    assert list(imports_of("from ..dedup import exact\n", "corpus.sources.crawl")) == [(1, "corpus.dedup")]
    assert list(imports_of("from . import x\n", "corpus.sources", is_package=True)) == [(1, "corpus.sources")]
    assert list(imports_of("from .words import tokenize\n", "corpus.annotate.keyphrases")) == [
        (1, "corpus.annotate.words")
    ]
    assert violations("from ... import x\n", "corpus.sources.crawl") == [
        "corpus.sources.crawl:1: corpus.sources.crawl imports ..."  # climbs out of the package
    ]


# --- the libraries --------------------------------------------------------------------------------------------


def test_every_library_file_imports_only_downwards():
    files = library_files()
    found = {module_name(p) for p in files}
    assert {"corpus.sources.crawl", "tokenizer.train", "training.pretrain"} <= found  # the walk sees the libraries
    problems = []
    for path in files:
        module = module_name(path)
        source = path.read_text(encoding="utf-8")
        problems += violations(source, module, path.name == "__init__.py", str(path.relative_to(ROOT)))
    assert problems == []


CHECK = """
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in ("prefect", "torch", "flows") if m in sys.modules)))
"""


def _loaded(modules: list[str]) -> set[str]:
    """Which of prefect, torch and flows a fresh interpreter has loaded after importing `modules`."""
    out = subprocess.run(
        [sys.executable, "-c", CHECK.format(modules=modules)], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _modules(package: str) -> list[str]:
    return sorted(module_name(p) for p in (ROOT / package).rglob("*.py") if p.name != "__main__.py")


@pytest.mark.parametrize("package", ["corpus", "tokenizer"])
def test_corpus_and_tokenizer_import_neither_prefect_nor_torch(package):
    modules = _modules(package)
    assert len(modules) > 3
    assert _loaded(modules) == set()


def test_training_imports_no_prefect_and_torch_only_to_train():
    assert _loaded(["training", "training.config"]) == set()
    assert _loaded(_modules("training")) == {"torch"}  # pretrain, finetune, model, checkpoint train


def test_cli_import_is_light():
    assert _loaded(["flows.cli"]) == {"flows"}
