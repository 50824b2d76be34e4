"""Import direction (DESIGN.md section 2): libraries never import Prefect, and not torch unless training."""

import subprocess
import sys

import pytest

CHECK = """
import sys, importlib
for name in {modules!r}:
    importlib.import_module(name)
print(",".join(sorted(m for m in ("prefect", "torch", "flows") if m in sys.modules)))
"""


def _loaded(modules):
    out = subprocess.run([sys.executable, "-c", CHECK.format(modules=modules)], capture_output=True, text=True, check=True)
    return set(filter(None, out.stdout.strip().split(",")))


@pytest.mark.parametrize(
    "modules",
    [
        ["corpus", "corpus.document", "corpus.manifest", "corpus.stages", "corpus.shards", "corpus.config"],
        ["corpus.sources", "corpus.extract", "corpus.annotate", "corpus.filters"],
        ["tokenizer", "tokenizer.train", "tokenizer.encode", "tokenizer.evaluate", "tokenizer.export"],
    ],
)
def test_corpus_and_tokenizer_import_neither_prefect_nor_torch(modules):
    assert _loaded(modules) == set()


def test_training_does_not_import_prefect():
    assert "prefect" not in _loaded(["training", "training.config", "training.pretrain"])
    assert "flows" not in _loaded(["training", "training.pretrain"])


def test_cli_import_is_light():
    assert _loaded(["flows.cli"]) == {"flows"}
