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


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            ours = version("corpusforge")
        except PackageNotFoundError:  # run from a source tree that was never installed
            ours = "unknown (not installed)"
        sys.stdout.write(f"corpusforge {ours}\n")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Raw web text to a trained language model."""


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
    debug = bool(os.environ.get("CORPUSFORGE_DEBUG"))
    if not debug:
        # A failed run is said in one line below: Prefect's own log lines (task and flow states, tracebacks) stay out
        # of the terminal, in this process and in the workers it spawns. CORPUSFORGE_DEBUG=1 shows them.
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_INTERNAL_LOGGING_LEVEL", "CRITICAL")
        for name in ("EventsWorker", "APILogWorker"):  # Prefect's senders, left with nowhere to send when a run fails
            logging.getLogger(name).setLevel(logging.CRITICAL)
        # A stopped pool leaves semaphores for multiprocessing's resource tracker to clean up, which it does, with a
        # warning per run that means nothing to the user.
        os.environ.setdefault("PYTHONWARNINGS", "ignore:resource_tracker:UserWarning")
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
    from flows.interrupt import RunGuard, ServerDied

    try:
        # The guard first: threads and processes started after it (the progress display's, Prefect's, the workers)
        # never see a Ctrl-C; the guard alone takes it and stops them all within seconds.
        with RunGuard(), _progress() as report:
            ledger = run_pipeline(cfg, from_stage, to_stage, force, report=report)
    except KeyboardInterrupt:
        console.print(
            f"[yellow]interrupted:[/yellow] finished stages and units are kept in {cfg.output}; run the same command again to resume.",
            highlight=False,
        )
        _exit_soon(130)
    except Exception as err:
        if debug:
            raise
        from rich.markup import escape

        # A ValueError says what is wrong with the input or the settings in its own words; others name their type.
        plain = isinstance(err, (ValueError, ServerDied)) and str(err)
        said = str(err) if plain else f"{type(err).__name__}: {err}"
        console.print(f"[red]run failed:[/red] {escape(said)}", highlight=False)
        console.print(
            f"Finished stages are kept; `corpusforge inspect {cfg.output}` shows the ledger so far; run the same command "
            "again to resume. CORPUSFORGE_DEBUG=1 shows the traceback.",
            highlight=False,
        )
        _exit_soon(1)
    _print_summary(ledger, time.time() - start)


def _exit_soon(code: int) -> None:
    """Exit with `code`. In the `corpusforge` process itself (not when called in-process, as tests do), should the
    interpreter's teardown hang on a thread of a broken process pool, end anyway after a few seconds: the run's
    processes are stopped and its ledger written by now."""
    if Path(sys.argv[0]).name == "corpusforge" or Path(sys.argv[0]).resolve() == Path(__file__).resolve():
        import threading

        def hard_exit() -> None:
            time.sleep(5)
            os._exit(code)

        threading.Thread(target=hard_exit, name="corpusforge-exit", daemon=True).start()
    raise typer.Exit(code) from None


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


def _shown(value) -> str:
    """Input-derived text as it may be printed: control, ANSI and bidi characters escaped, no rich markup."""
    from rich.markup import escape

    from corpus.safe import safe_text

    return escape(safe_text(value))


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
            console.print(f"  [yellow]input not read:[/yellow] {_shown(err.get('path'))}: {_shown(err.get('error'))}")
        else:
            console.print(f"  [yellow]damaged input:[/yellow] {_shown(err.get('path'))} at byte {err.get('offset')}: {_shown(err.get('error'))}")
    out = ledger["outputs"]
    console.print("[bold]outputs[/bold]")
    for key in ("documents", "rejected", "tokenizer", "tokens", "model", "finetune", "report"):
        if out.get(key):
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
    target: Path = typer.Argument(..., help="A run directory, or one Arrow shard of it."),
    sample: Optional[int] = typer.Option(None, "--sample", help="Show N documents drawn at random (fixed seed) with their signals and keyphrases."),
    where: Optional[str] = typer.Option(None, "--where", help="Only rows where EXPR holds, e.g. \"lang == 'de' and signals.n_words > 500\" (never run as Python)."),
    rejected: bool = typer.Option(False, "--rejected", help="Sample the rejected rows (stage, reason, detail, kept_id) instead of the documents."),
    reason: Optional[str] = typer.Option(None, "--reason", help="With --rejected: only this reason (gopher_min_words) or stage/reason."),
    decode: bool = typer.Option(False, "--decode", help="Decode token shards (the run's tokens/, or one token shard) back to text, with token counts."),
    why: Optional[str] = typer.Option(None, "--why", help="Follow one document id (or its URL) through the stages: where it came from, each verdict."),
    verify: bool = typer.Option(False, "--verify", help="Recompute the sha256 of every file the manifests list; exit 1 on any mismatch."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the run's self-contained report.html to FILE."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (stable keys; `mode` names the view)."),
) -> None:
    """What is in a run (or one shard), and why each document is or is not in it: the ledger as a funnel,
    languages, lengths, keyphrases and files; samples; decoded tokens; one document's journey; checksums."""
    from rich.markup import escape

    from flows.inspect import InspectError, inspect_target, is_run, render

    if report is not None:
        if any((sample is not None, where, rejected, reason, decode, why, verify)):
            console.print("[red]error:[/red] --report writes the report alone: drop the other options")
            raise typer.Exit(2)
        if not is_run(target):
            console.print(f"[red]error:[/red] {escape(str(target))} is not a run directory (no ledger in manifest.json): --report needs a run")
            raise typer.Exit(2)
        try:
            from flows.report import write_report
        except ModuleNotFoundError as err:
            if err.name not in ("flows.report", "flows"):
                raise
            console.print("[red]error:[/red] this installation has no report writer (flows/report.py): update corpusforge")
            raise typer.Exit(2) from None
        written = write_report(target, report)
        if as_json:
            sys.stdout.write(json.dumps({"mode": "report", "run": str(target), "report": str(written)}) + "\n")
        else:
            console.print(f"report written to {escape(str(written))}", highlight=False)
        return

    try:
        result = inspect_target(target, sample=sample, where=where, rejected=rejected, reason=reason, decode=decode, why=why, verify=verify)
    except InspectError as err:
        console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
        raise typer.Exit(2) from None
    unknown = result["mode"] == "why" and result["why"]["status"] == "unknown"
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, default=str, ensure_ascii=False) + "\n")
    elif unknown:
        console.print(f"[red]error:[/red] {escape(result['why']['detail'])}", highlight=False)
    else:
        render(result, Console(soft_wrap=True))
    if unknown or (result["mode"] == "verify" and not result["verify"]["ok"]):
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
