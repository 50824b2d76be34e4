"""One typed config tree for a run: defaults <- preset <- YAML file <- `--set key=value` <- environment.

Environment overrides use `CORPUSFORGE__SECTION__KEY=value` (for example `CORPUSFORGE__PRETRAIN__DEVICE=cpu`).
Every error names the key and says what to change, before any work starts.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model

from corpus import config as corpus_config
from corpus.config import (
    AnnotateConfig,
    CrawlConfig,
    DedupConfig,
    ExtractConfig,
    FilterConfig,
    IngestConfig,
    Section,
    ShardConfig,
)
from tokenizer.config import TokenizerConfig, TokensConfig
from training.config import FinetuneConfig, PretrainConfig

ENV_PREFIX = "CORPUSFORGE__"


class RunnerConfig(Section):
    kind: str = Field("process", pattern="^(process|ray)$", description="process (local pool) or ray (prefect-ray).")
    workers: int = Field(0, ge=0, description="Local worker processes; 0 uses one per CPU core.")
    ray_address: str = Field("", description="Address of a Ray cluster for kind=ray; empty starts a local Ray.")


class PipelineConfig(Section):
    input: list[str] = Field(default_factory=list, description="Input files, directories or globs; empty: the bundled sample.")
    output: str = Field("runs/sample", description="Run directory.")
    lm_text: str = Field("natural", pattern="^(natural|terms)$", description="Text view the tokenizer and model see.")
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    annotate: AnnotateConfig = Field(default_factory=AnnotateConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    shard: ShardConfig = Field(default_factory=ShardConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    tokens: TokensConfig = Field(default_factory=TokensConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    crawl: CrawlConfig = Field(default_factory=CrawlConfig)


_pipeline_models: dict[type, type[PipelineConfig]] = {}


def pipeline_model() -> type[PipelineConfig]:
    """The model a config tree is validated with: PipelineConfig, or, after a signal family was registered in this
    process once this module was imported (tests), a subclass whose `filter` section is the FilterConfig with that
    family's settings. Families registered at import (built-ins, entry points) are in PipelineConfig itself."""
    filter_model = corpus_config.FilterConfig
    if PipelineConfig.model_fields["filter"].annotation is filter_model:
        return PipelineConfig
    if filter_model not in _pipeline_models:
        _pipeline_models[filter_model] = create_model(
            PipelineConfig.__name__,
            __base__=PipelineConfig,
            __module__=__name__,
            filter=(filter_model, Field(default_factory=filter_model)),
        )
    return _pipeline_models[filter_model]


class ConfigError(ValueError):
    """A config problem, phrased for the user: which key, what is wrong, how to fix it."""


# --- presets: functions returning overrides --------------------------------------------------------------------------


def preset_sample() -> dict:
    """The default: the bundled sample on CPU in a few minutes."""
    return {
        "ingest": {"unit_bytes": 1 << 20},
        "shard": {"val_fraction": 0.1},
        "tokenizer": {"vocab_size": 8192},
        "pretrain": {"preset": "tiny", "max_steps": 500, "lr": 3e-3, "device": "auto", "log_every": 50, "eval_every": 250},
    }


def preset_tiny() -> dict:
    """Tests: a slice of the sample and a model that trains in seconds."""
    return {
        "output": "runs/tiny",
        "ingest": {"unit_bytes": 512 << 10, "max_records": 40},
        "shard": {"val_fraction": 0.2},
        "tokenizer": {"vocab_size": 1024},
        "pretrain": {"preset": "tiny", "max_steps": 30, "eval_every": 15, "eval_batches": 2, "batch_size": 8, "block_size": 64},
    }


def preset_gpu() -> dict:
    """One H200-class GPU: GPT-2 124M, bf16, compiled."""
    return {
        "output": "runs/gpu",
        "tokenizer": {"vocab_size": 50257},
        "pretrain": {
            "preset": "small",
            "device": "cuda",
            "compile": True,
            "batch_size": 32,
            "grad_accum": 4,
            "block_size": 1024,
            "max_steps": 5000,
            "lr": 6e-4,
            "min_lr": 6e-5,
            "warmup_steps": 200,
            "eval_every": 250,
        },
    }


PRESETS = {"sample": preset_sample, "tiny": preset_tiny, "gpu": preset_gpu}


# --- loading ---------------------------------------------------------------------------------------------------------



class _YamlLoader(yaml.SafeLoader):
    """YAML 1.1's SafeLoader with YAML 1.2 booleans: only true/false. Otherwise `date_search: off` or
    `--set extract.date_search=off` arrive as False and fail a setting whose values are words."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(text: str):
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506  a SafeLoader subclass

def load_config(
    config_file: Path | None = None,
    preset: str = "sample",
    sets: list[str] | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict | None = None,
) -> PipelineConfig:
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    tree: dict = PRESETS[preset]()
    if config_file is not None:
        tree = deep_merge(tree, _read_yaml(Path(config_file)))
    tree = deep_merge(tree, parse_sets(sets or []))
    for key, value in (os.environ if environ is None else environ).items():
        if key.startswith(ENV_PREFIX):
            dotted = key[len(ENV_PREFIX) :].lower().replace("__", ".")
            tree = deep_merge(tree, _nest(dotted, load_yaml(value)))
    tree = deep_merge(tree, overrides or {})
    return validate(tree)


def validate(tree: dict) -> PipelineConfig:
    model = pipeline_model()
    _check_keys(tree, model, "")
    try:
        return model.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_explain(err)) from None


def deep_merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: check the path given to --config")
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections (ingest:, filter:, ...), not {type(data).__name__}")
    return data


def parse_sets(items: list[str]) -> dict:
    """`key.path=value` items (values read as YAML: true, 5, [a, b]) merged into one nested dict, later wins."""
    tree: dict = {}
    for item in items:
        tree = deep_merge(tree, _parse_set(item))
    return tree


def _parse_set(item: str) -> dict:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: write it as section.key=value, for example --set tokenizer.vocab_size=4096")
    return _nest(key.strip(), load_yaml(raw) if raw.strip() else "")


def _nest(dotted: str, value: Any) -> dict:
    out: dict = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def _check_keys(tree: dict, model: type[BaseModel], prefix: str) -> None:
    """Unknown keys get a 'did you mean' from the fields that exist, before pydantic's generic message."""
    fields = model.model_fields
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"did you mean `{prefix}{close[0]}`?" if close else f"valid keys here: {', '.join(fields)}"
            raise ConfigError(f"unknown config key `{path}`: {hint}")
        annotation = fields[key].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not isinstance(value, dict):
                raise ConfigError(f"config key `{path}` is a section: give it keys (e.g. {path}.{next(iter(annotation.model_fields))}=...), not {value!r}")
            _check_keys(value, annotation, f"{path}.")


def _explain(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        field = _field_for(key)
        hint = f" ({field.description})" if field is not None and field.description else ""
        lines.append(f"config key `{key}`: {e['msg']}; got {e.get('input')!r}{hint}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _field_for(dotted: str):
    model: Any = pipeline_model()
    field = None
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return field
        field = fields[part]
        model = field.annotation
    return field


def to_yaml(cfg: PipelineConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
