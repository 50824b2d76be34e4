"""The one CLI: `corpusforge run | crawl | inspect | finetune | export`."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

# transformers' and huggingface_hub's per-file progress bars (loading and saving weights) would cut into the rich
# progress display and the trainer's log lines; read when those libraries are imported, in this process and workers.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Raw web text to a trained language model.")
console = Console(stderr=True, soft_wrap=True)  # errors stay on one line, whole, for grep and logs


@app.command()
def run(
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config file (sections mirror the stages)."),
    preset: str = typer.Option("sample", "--preset", help="Base settings: sample (default), tiny (tests), gpu."),
    input: Optional[list[str]] = typer.Option(None, "--input", help="Input file, directory or glob; repeatable. Default: the bundled sample."),
    output: Optional[Path] = typer.Option(None, "--output", help="Run directory (default from the preset: runs/sample)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a config key: section.key=value; repeatable."),
    from_stage: Optional[str] = typer.Option(None, "--from", help="Rerun from this stage (ingest, extract, annotate, filter, dedup, shard, tokenizer, tokens, pretrain, finetune)."),
    to_stage: Optional[str] = typer.Option(None, "--to", help="Stop after this stage."),
    runner: Optional[str] = typer.Option(None, "--runner", help="process (default) or ray."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster address for --runner ray."),
    force: bool = typer.Option(False, "--force", help="Rerun every selected stage even when its output is current."),
) -> None:
    """Process inputs (default: the bundled sample) into a run directory: documents, tokenizer, tokens, model."""
    from flows.config import ConfigError, load_config

    overrides: dict = {}
    if input:
        overrides["input"] = list(input)
    if output is not None:
        overrides["output"] = str(output)
    if runner is not None:
        overrides.setdefault("runner", {})["kind"] = runner
    if ray_address is not None:
        overrides.setdefault("runner", {})["ray_address"] = ray_address
    try:
        cfg = load_config(config, preset, list(set_ or []), overrides=overrides)
        for item in cfg.input:
            if not any(ch in item for ch in "*?[") and not Path(item).exists():
                raise ConfigError(f"input {item!r} does not exist: give an existing file, directory or glob to --input")
        from flows.pipeline import plan

        planned = plan(cfg, from_stage, to_stage, force)
    except (ConfigError, ValueError, RuntimeError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None

    from flows.pipeline import run_pipeline

    todo = [p.stage.name for p in planned if p.action == "run"]
    done = [p.stage.name for p in planned if p.action == "skip"]
    console.print(f"[bold]corpusforge[/bold] run -> {cfg.output}")
    if done:
        console.print(f"  up to date, skipped: {', '.join(done)}")
    if todo:
        console.print(f"  to run: {', '.join(todo)}")
    start = time.time()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        with _progress() as report:
            ledger = run_pipeline(cfg, from_stage, to_stage, force, report=report)
    except Exception as err:
        if os.environ.get("CORPUSFORGE_DEBUG"):
            raise
        console.print(f"[red]run failed:[/red] {type(err).__name__}: {err}")
        console.print("Finished stages are kept; run the same command again to resume. CORPUSFORGE_DEBUG=1 shows the traceback.")
        raise typer.Exit(1) from None
    _print_summary(ledger, time.time() - start)


class _progress:
    """A rich progress bar per step, advanced as unit tasks finish."""

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("  {task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        )
        self.tasks: dict[str, int] = {}
        self.progress.start()
        return self.report

    def report(self, step: str, done: int, total: int) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.progress.add_task(step, total=total)
        self.progress.update(self.tasks[step], completed=done, total=total)

    def __exit__(self, *exc):
        self.progress.stop()


def _print_summary(ledger: dict, seconds: float) -> None:
    from rich.table import Table

    table = Table(title=f"ledger ({seconds:.1f} s)", title_justify="left")
    for col in ("stage", "in", "out", "dropped", "seconds"):
        table.add_column(col, justify="right" if col in ("in", "out", "seconds") else "left")
    for s in ledger["stages"]:
        dropped = ", ".join(f"{k} {v}" for k, v in s["dropped"].items()) or "-"
        table.add_row(s["name"], str(s["in"]), str(s["out"]), dropped, f"{s['seconds']:.1f}")
    console.print(table)
    for err in ledger.get("errors", []):
        if err.get("offset") is None:
            console.print(f"  [yellow]input not read:[/yellow] {err.get('path')}: {err.get('error')}")
        else:
            console.print(f"  [yellow]damaged input:[/yellow] {err.get('path')} at byte {err.get('offset')}: {err.get('error')}")
    out = ledger["outputs"]
    console.print("[bold]outputs[/bold]")
    for key in ("documents", "rejected", "tokenizer", "tokens", "model", "finetune"):
        if key in out:
            console.print(f"  {key:<10} {out[key]}")
    console.print(f"\nlook inside:  corpusforge inspect {ledger['run']}")


@app.command()
def crawl(
    seeds: list[str] = typer.Argument(..., help="Start URLs (https:// is assumed when no scheme is given)."),
    output: Path = typer.Option(..., "--output", help="Folder for the WARC files; a rerun resumes from them."),
    max_pages: int = typer.Option(100, "--max-pages", help="Stop after this many pages (0 = no limit)."),
    max_depth: int = typer.Option(1, "--max-depth", help="Links followed from the seeds (0: the seeds only)."),
    same_domain: bool = typer.Option(True, "--same-domain/--any-domain", help="Follow links only within the seeds' hosts."),
    rate: float = typer.Option(1.0, "--rate", help="Requests per second per host."),
    allow_private: bool = typer.Option(False, "--allow-private", help="Allow private, loopback and link-local addresses."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config; its crawl: section gives the other settings."),
) -> None:
    """Crawl politely from seed URLs into WARC files that `corpusforge run --input DIR` reads."""
    from flows.config import ConfigError, load_config

    seeds = [s if "://" in s else f"https://{s.lstrip('/')}/" for s in seeds]
    overrides = {"crawl": {"max_pages": max_pages, "max_depth": max_depth, "same_domain": same_domain, "rate": rate, "allow_private": allow_private}}
    try:
        cfg = load_config(config, overrides=overrides)
    except ConfigError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    from corpus.sources.crawl import crawl as run_crawl

    summary = run_crawl(seeds, output, cfg.crawl, log=console.print)
    console.print(
        f"fetched {summary['fetched']} responses ({summary['pages']} pages in all, {summary['from_archive']} from earlier WARC files) "
        f"in {summary['seconds']:.1f} s -> {summary['warc'] or output}"
    )
    for reason, n in sorted(summary.get("skipped", {}).items()):
        console.print(f"  skipped {reason}: {n}")
    for host, message in summary.get("refused", {}).items():
        console.print(f"  [yellow]refused[/yellow] {host}: {message}")
    console.print(f"next: corpusforge run --input {output} --output runs/crawl")
    if summary["pages"] == 0 and summary.get("refused"):
        raise typer.Exit(1)


@app.command()
def inspect(
    target: Path = typer.Argument(..., help="A run directory or one Arrow shard."),
    sample: int = typer.Option(3, "--sample", help="Documents to show."),
    why: Optional[str] = typer.Option(None, "--why", help="Explain what happened to this document id."),
    verify: bool = typer.Option(False, "--verify", help="Recompute sha256 of every file listed in the manifests."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (stable keys)."),
) -> None:
    """Show the ledger, shard schemas and row counts, drops by reason and sample documents of a run."""
    from flows.inspect import inspect_target

    try:
        result = inspect_target(target, sample=sample, why=why, verify=verify)
    except FileNotFoundError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    else:
        from flows.inspect import render

        render(result, Console())
    if verify and result.get("verify", {}).get("problems"):
        raise typer.Exit(1)


@app.command()
def finetune(
    model: Path = typer.Option(..., "--model", help="Checkpoint folder: a corpusforge model/ or any local transformers checkpoint."),
    data: Path = typer.Option(..., "--data", help="Labelled CSV/TSV/JSONL/Parquet file."),
    output: Path = typer.Option(..., "--output", help="Folder for the fine-tuned classifier and metrics.json."),
    eval_data: Optional[Path] = typer.Option(None, "--eval-data", help="Held-out labelled file; default: a stratified split of --data."),
    text_column: str = typer.Option("text", "--text-column", help="Column with the text."),
    label_column: str = typer.Option("label", "--label-column", help="Column with the label."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a finetune key: finetune.epochs=2; repeatable."),
) -> None:
    """Fine-tune a checkpoint for sequence classification; prints accuracy and macro-F1 on held-out data."""
    from flows.config import ConfigError, load_config

    overrides = {
        "finetune": {
            "data": str(data),
            "eval_data": str(eval_data or ""),
            "text_column": text_column,
            "label_column": label_column,
            "model": str(model),
        }
    }
    try:
        cfg = load_config(sets=list(set_ or []), overrides=overrides)
        for path in (model, data, eval_data):
            if path is not None and not path.exists():
                raise ConfigError(f"{path} does not exist")
    except ConfigError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    from training.finetune import finetune as run_finetune

    try:
        metrics = run_finetune(cfg.finetune, model, output, log=console.print)
    except ValueError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    console.print(
        f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
        f"majority baseline {metrics['majority_baseline']:.4f}  (train {metrics['n_train']}, eval {metrics['n_eval']})"
    )
    console.print(f"model and metrics.json in {output}")


# --- scheduled runs: deploy (a work pool's worker runs it) and serve (this process runs it) -------------------------


def _schedule_config(config: Optional[Path], preset: str, input: Optional[list[str]], output: Optional[Path], set_: Optional[list[str]]):
    """The config of a scheduled run, loaded as `run` loads it; ConfigError names the problem."""
    from flows.config import ConfigError, load_config

    overrides: dict = {}
    if input:
        overrides["input"] = list(input)
    if output is not None:
        overrides["output"] = str(output)
    cfg = load_config(config, preset, list(set_ or []), overrides=overrides)
    for item in cfg.input:
        if "://" not in item and not any(ch in item for ch in "*?[") and not Path(item).exists():
            raise ConfigError(f"input {item!r} does not exist: give an existing file, directory or glob to --input")
    return cfg


_CRON_HELP = "Cron schedule, five fields in UTC: minute hour day-of-month month day-of-week, e.g. '0 3 * * *'."


@app.command()
def deploy(
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config file (sections mirror the stages)."),
    cron: str = typer.Option(..., "--cron", help=_CRON_HELP),
    name: Optional[str] = typer.Option(None, "--name", help="Deployment name (default: the run directory's name): corpusforge-pipeline/NAME."),
    pool: str = typer.Option("corpusforge", "--pool", help="Work pool whose workers run it; created as a process pool if missing."),
    preset: str = typer.Option("sample", "--preset", help="Base settings: sample (default), tiny (tests), gpu."),
    input: Optional[list[str]] = typer.Option(None, "--input", help="Input file, directory or glob; repeatable. Default: the bundled sample."),
    output: Optional[Path] = typer.Option(None, "--output", help="Run directory (default from the preset: runs/sample)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a config key: section.key=value; repeatable."),
) -> None:
    """Register the pipeline with a Prefect server as a deployment on a cron schedule, for a work pool's workers to run."""
    from flows.config import ConfigError
    from flows.deploy import DeployError, check_cron, deploy as create_deployment, describe

    try:
        check_cron(cron)
        cfg = _schedule_config(config, preset, input, output, set_)
        summary = create_deployment(cfg, cron, name, pool)
    except (ConfigError, DeployError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    except Exception as err:  # the server refused it or is unreachable
        if os.environ.get("CORPUSFORGE_DEBUG"):
            raise
        console.print(f"[red]deploy failed:[/red] {type(err).__name__}: {err}")
        raise typer.Exit(1) from None
    for line in describe(summary):
        console.print(line, highlight=False, markup=False)


@app.command()
def serve(
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config file (sections mirror the stages)."),
    cron: str = typer.Option(..., "--cron", help=_CRON_HELP),
    name: Optional[str] = typer.Option(None, "--name", help="Deployment name (default: the run directory's name): corpusforge-pipeline/NAME."),
    preset: str = typer.Option("sample", "--preset", help="Base settings: sample (default), tiny (tests), gpu."),
    input: Optional[list[str]] = typer.Option(None, "--input", help="Input file, directory or glob; repeatable. Default: the bundled sample."),
    output: Optional[Path] = typer.Option(None, "--output", help="Run directory (default from the preset: runs/sample)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a config key: section.key=value; repeatable."),
) -> None:
    """Serve the pipeline from this process on a cron schedule (a long-lived process; Ctrl-C stops it)."""
    from flows.config import ConfigError
    from flows.deploy import DeployError, check_cron, serve as serve_deployment

    try:
        check_cron(cron)
        cfg = _schedule_config(config, preset, input, output, set_)
    except (ConfigError, DeployError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    try:
        serve_deployment(cfg, cron, name, log=lambda line: console.print(line, highlight=False, markup=False))
    except DeployError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None


export_app = typer.Typer(no_args_is_help=True, help="Write a run's outputs in other tools' formats.")
app.add_typer(export_app, name="export")


@export_app.command("tokens")
def export_tokens(
    run_dir: Path = typer.Argument(..., help="Run directory with tokens/."),
    format: str = typer.Option(..., "--format", help="nanogpt (train.bin/val.bin) or megatron (.bin/.idx)."),
    output: Path = typer.Option(..., "--output", help="Folder for the exported files."),
) -> None:
    """Export the token shards for nanoGPT or Megatron-LM."""
    from tokenizer.export import export_tokens as run_export

    try:
        summary = run_export(run_dir, format, output)
    except (ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    console.print(json.dumps(summary, indent=2, default=str))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
