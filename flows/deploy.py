"""Scheduled runs of the pipeline flow (DESIGN.md sections 5 and 6).

`deploy` registers a deployment of `corpusforge-pipeline` with a cron schedule for a work pool: a worker started
from this environment (`prefect worker start --pool NAME`) runs it. `serve` registers the same deployment and runs
its scheduled runs from this process, as long as it lives. The deployment's parameters are the whole config; a
scheduled run over the same config skips the work that is already done (the stages' fingerprints), so nothing
else is needed for incremental runs.

The flow is loaded by module path (`flows.pipeline.corpusforge_pipeline`), not by file path, so a worker can run it
from any directory of a machine where corpusforge is installed, and nothing is copied or built (no image, no pull
steps). Relative paths in the config are made absolute here, where they were meant, since the worker runs elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flows.config import PipelineConfig

DEFAULT_WORK_POOL = "corpusforge"
# Config keys that hold local paths, besides `input` (a list) and `output`.
PATH_KEYS = (("filter", "url_blocklist"), ("dedup", "index_path"), ("finetune", "data"), ("finetune", "eval_data"), ("finetune", "model"))

__all__ = ["DEFAULT_WORK_POOL", "DeployError", "check_cron", "deploy", "describe", "serve"]


class DeployError(ValueError):
    """A problem with the deployment's settings or setup, phrased for the user (the CLI exits with code 2)."""


def check_cron(cron: str) -> str:
    """The cron expression, or a DeployError that says what a valid one looks like (checked as Prefect will)."""
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron)
    except ValidationError as err:
        reason = err.errors()[0]["msg"].removeprefix("Value error, ")
        raise DeployError(
            f"--cron {cron!r} is not a valid cron expression ({reason}): give five fields, minute hour day-of-month "
            "month day-of-week, for example --cron '0 3 * * *' (every day at 03:00 UTC)"
        ) from None
    return cron


def deploy(
    cfg: PipelineConfig,
    cron: str,
    name: str | None = None,
    work_pool: str | None = None,
    *,
    timezone: str | None = None,
) -> dict:
    """Create (or update) the deployment `corpusforge-pipeline/NAME` with a cron schedule for a work pool, with the
    config as its parameters. The pool is created as a `process` pool when it does not exist. Needs a Prefect server
    that workers reach (PREFECT_API_URL). Returns what `describe` prints: name, id, schedule, pool, commands."""
    check_cron(cron)
    api_url = _api_url()
    if not api_url:
        raise DeployError(
            "deploy registers the deployment with the Prefect server that workers poll, and PREFECT_API_URL is not set: "
            "start one (`prefect server start`) and `export PREFECT_API_URL=http://127.0.0.1:4200/api`, or use "
            "`corpusforge serve` to run the schedule from one local process"
        )
    pool = work_pool or DEFAULT_WORK_POOL
    pool_type, pool_created = ensure_work_pool(pool)
    deployment, parameters = _deployment(cfg, cron, name, timezone, work_pool_name=pool)
    deployment_id = deployment.apply()
    return _summary(deployment, deployment_id, cron, timezone, parameters, api_url) | {
        "work_pool": pool,
        "work_pool_type": pool_type,
        "work_pool_created": pool_created,
        "worker_command": f"prefect worker start --pool {shlex.quote(pool)}",
    }


def serve(
    cfg: PipelineConfig,
    cron: str,
    name: str | None = None,
    *,
    timezone: str | None = None,
    log: Callable[[str], Any] = print,
    limit: int | None = None,
) -> dict:
    """Register the deployment with a cron schedule and run its scheduled (and manually triggered) runs from this
    process until it is stopped (Ctrl-C or SIGTERM); then its schedule is paused. Uses the server at PREFECT_API_URL,
    or starts a temporary local one for the life of this process. Returns the summary when stopped."""
    check_cron(cron)
    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    with _api() as api_url:
        deployment, parameters = _deployment(cfg, cron, name, timezone)
        runner = Runner(name=f"corpusforge-{deployment.name}", pause_on_shutdown=True, limit=limit)
        deployment_id = runner.add_deployment(deployment)
        summary = _summary(deployment, deployment_id, cron, timezone, parameters, api_url)
        for line in describe(summary):
            log(line)
        log("serving: runs start here on schedule; Ctrl-C stops (and pauses the schedule)")
        import asyncio

        with contextlib.suppress(KeyboardInterrupt, TerminationSignal):
            asyncio.run(runner.start())
    return summary


def describe(summary: dict) -> list[str]:
    """The lines `corpusforge deploy/serve` print: what was registered and how to run it."""
    lines = [
        f"deployment  {summary['deployment']}  (id {summary['id']})",
        f"schedule    cron '{summary['cron']}' ({summary['timezone']})",
    ]
    if "work_pool" in summary:
        created = ", created" if summary["work_pool_created"] else ""
        lines.append(f"work pool   {summary['work_pool']} ({summary['work_pool_type']}{created})")
    lines += [
        f"run dir     {summary['output']}",
        f"server      {summary['api_url']}",
    ]
    if "worker_command" in summary:
        lines.append(f"start a worker (in this environment):  {summary['worker_command']}")
    lines.append(f"run it now:  {summary['run_command']}")
    return lines


def ensure_work_pool(name: str) -> tuple[str, bool]:
    """The pool's type, and whether it was created now (as a `process` pool with Prefect's default job template)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_work_pool(name).type, False
        except ObjectNotFound:
            pass
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.workers.process import ProcessWorker

        template = ProcessWorker.get_default_base_job_template()
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template))
        except ObjectAlreadyExists:  # created by someone else meanwhile
            return client.read_work_pool(name).type, False
        return "process", True


# --- helpers ---------------------------------------------------------------------------------------------------------


def _deployment(cfg: PipelineConfig, cron: str, name: str | None, timezone: str | None, work_pool_name: str | None = None):
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.types.entrypoint import EntrypointType

    from flows.pipeline import corpusforge_pipeline as flow

    parameters = {"cfg": _absolute_paths(cfg.model_dump(mode="json"))}
    name = name or Path(parameters["cfg"]["output"]).name
    try:
        deployment = flow.to_deployment(
            name,
            schedule=CronSchedule(cron=cron, timezone=timezone),
            parameters=parameters,
            work_pool_name=work_pool_name,
            description=f"corpusforge pipeline into {parameters['cfg']['output']}",
            tags=["corpusforge"],
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
    except ValueError as err:  # a name with '/', '%', ... ; a timezone Prefect does not know
        raise DeployError(f"--name {name!r}: {err}") from None
    # Prefect derives the module entrypoint from the function's name; the flow object is what must be imported.
    deployment.entrypoint = _entrypoint(flow)
    return deployment, parameters


def _entrypoint(flow) -> str:
    """`module.attribute` under which the flow object itself is importable (flows.pipeline, or its function's module)."""
    for module_name in ("flows.pipeline", flow.fn.__module__):
        module = sys.modules[module_name]
        for attribute, value in vars(module).items():
            if value is flow:
                return f"{module_name}.{attribute}"
    raise RuntimeError(f"flow {flow.name!r} is not a module-level attribute of flows.pipeline")


def _absolute_paths(tree: dict) -> dict:
    tree = dict(tree)
    tree["output"] = _absolute(tree["output"])
    tree["input"] = [_absolute(item) for item in tree["input"]]
    for section, key in PATH_KEYS:
        if tree.get(section, {}).get(key):
            tree[section] = dict(tree[section], **{key: _absolute(tree[section][key])})
    return tree


def _absolute(path: str) -> str:
    if "://" in path:  # a URL
        return path
    return os.path.abspath(os.path.expanduser(path))  # lexical: keeps glob characters, needs nothing to exist


def _summary(deployment, deployment_id, cron: str, timezone: str | None, parameters: dict, api_url: str | None) -> dict:
    full_name = f"{deployment.flow_name}/{deployment.name}"
    return {
        "deployment": full_name,
        "name": deployment.name,
        "flow": deployment.flow_name,
        "id": str(deployment_id),
        "cron": cron,
        "timezone": timezone or "UTC",
        "entrypoint": deployment.entrypoint,
        "output": parameters["cfg"]["output"],
        "parameters": parameters,
        "api_url": api_url,
        "run_command": f"prefect deployment run {shlex.quote(full_name)}",
    }


def _api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


@contextlib.contextmanager
def _api() -> Iterator[str]:
    """The user's server (PREFECT_API_URL, from the environment or a Prefect profile), else a temporary one."""
    if url := _api_url():
        yield url
        return
    from flows.pipeline import prefect_api

    with prefect_api():
        yield os.environ["PREFECT_API_URL"]
