"""The corpus stages, one module each, read top to bottom: extract -> filter -> dedup -> shard.

Each module defines its `Stage` (corpus.stage) and the plain per-unit functions it maps; `corpus.stage.run_stage`
runs any of them, from a notebook or from the Prefect flow.
"""

from corpus.stages.dedup import DEDUP
from corpus.stages.extract import EXTRACT, extract_unit, input_paths, inputs_fingerprint, sample_input
from corpus.stages.filter import FILTER, filter_unit
from corpus.stages.shard import SHARD, shard_unit, split_of

CORPUS_STAGES = [EXTRACT, FILTER, DEDUP, SHARD]

__all__ = [
    "CORPUS_STAGES",
    "DEDUP",
    "EXTRACT",
    "FILTER",
    "SHARD",
    "extract_unit",
    "filter_unit",
    "input_paths",
    "inputs_fingerprint",
    "sample_input",
    "shard_unit",
    "split_of",
]
