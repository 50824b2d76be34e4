"""`corpusforge inspect`: what is in a run directory or one shard, and why each document is or is not in it.

Every view returns a plain dict, the `--json` output (stable keys; `mode` names the view), which `render` prints
for people:

- summary (`inspect RUN`): the ledger as a funnel, languages, length quantiles, top keyphrases, the shard list;
- shard (`inspect SHARD`): one Arrow file: schema, metadata, rows, checksum, its own statistics and a preview;
- sample (`--sample N [--where EXPR]`, `--rejected [--reason R]`): N rows drawn at random (fixed seed) among the
  documents, or the rejected rows, that match;
- decode (`--decode`): token shards decoded back to text, with token counts;
- why (`--why ID`): one document's journey, stage by stage;
- verify (`--verify`): every file the manifests list, its sha256 recomputed.

Statistics stream over record batches and touch only the columns they need (shards are memory-mapped, so counting
languages never pages in any text); quantiles come from a uniform sample of at most QUANTILE_SAMPLE values per
measure, exact below that.

`--where` is parsed with `ast` and translated node by node, from an allow-list, into a `pyarrow.compute.Expression`
that Arrow evaluates on each batch: nothing of it is ever run as Python.
"""

from __future__ import annotations

import ast
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.manifest import MANIFEST, read_manifest
from corpus.manifest import verify as verify_stage
from corpus.shards import open_batches, read_schema, sha256_file

# Stage folders whose manifest the run must have once they exist (report/ and others may add their own).
STAGE_DIRS = ["extracted", "filter", "dedup", "documents", "tokenizer", "tokens", "model", "finetune"]
QUANTILES = {"p10": 0.10, "p25": 0.25, "p50": 0.50, "p75": 0.75, "p90": 0.90}
QUANTILE_SAMPLE = 1_000_000  # values kept per measure; beyond that the quantiles are estimated from a uniform sample
KEYPHRASE_LIMIT = 200_000  # distinct phrases counted before the rarest are pruned (counts become lower bounds)
TOP_KEYPHRASES = 20
DEFAULT_SAMPLE = 5
SHARD_PREVIEW = 3
TEXT_SHOWN = 600  # characters of text printed per document (--json carries all of it)
SHARD_FILES_SHOWN = 12  # files listed per folder in the summary (--json lists all)
SEED = 0
ROW = "__row"


class InspectError(Exception):
    """Something the user can fix (a target that is not a run, a bad --where, an unknown reason): one line, exit 2."""


# --- the run and its files -----------------------------------------------------------------------------------------


def is_run(path: Path) -> bool:
    """A run directory: its manifest.json is the ledger (a `stages` list), not a stage manifest."""
    try:
        return "stages" in json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError, TypeError):
        return False


def run_of(path: Path) -> Path | None:
    """The run directory a shard belongs to (RUN/documents/x.arrow, RUN/tokens/train/x.arrow, ...)."""
    for parent in list(Path(path).resolve().parents)[:4]:
        if is_run(parent):
            return parent
    return None


def _ledger(run: Path) -> dict:
    return json.loads((run / MANIFEST).read_text())


def stage_files(run: Path, dirname: str, under: str = "") -> list[Path]:
    """The Arrow files a stage committed (from its manifest), optionally under one subfolder (tokens/train)."""
    manifest = read_manifest(run / dirname)
    if manifest is not None:
        paths = [run / dirname / f.path for f in manifest.files if f.path.endswith(".arrow")]
        if under:
            paths = [p for p in paths if p.parent.name == under]
        elif dirname == "dedup":
            paths = [p for p in paths if p.name == "clusters.arrow"]
        return sorted(paths)
    return sorted((run / dirname / under).glob("*.arrow"))


def rejected_files(run: Path, stage: str | None = None) -> list[Path]:
    return sorted((run / "rejected").glob(f"{stage or '*'}/*.arrow"))


def token_files(run: Path) -> list[Path]:
    return stage_files(run, "tokens", "train") + stage_files(run, "tokens", "val")


def _rel(path: Path, run: Path | None) -> str:
    if run is not None:
        try:
            return Path(path).resolve().relative_to(run.resolve()).as_posix()
        except ValueError:
            pass
    return str(path)


def _shard_kind(schema: pa.Schema) -> str:
    names = set(schema.names)
    if "input_ids" in names:
        return "tokens"
    if {"stage", "reason", "text"} <= names:
        return "rejected"
    if "text" in names:
        return "documents"
    if names == {"keep"}:
        return "keep_mask"
    if {"doc_id", "cluster_id", "kept_id"} <= names:
        return "clusters"
    return "other"


# --- entry point ---------------------------------------------------------------------------------------------------


def inspect_target(
    target: Path,
    *,
    sample: int | None = None,
    where: str | None = None,
    rejected: bool = False,
    reason: str | None = None,
    decode: bool = False,
    why: str | None = None,
    verify: bool = False,
    seed: int = SEED,
) -> dict:
    """The view the options ask for, as a dict (see the module docstring); InspectError for what the user can fix."""
    target = Path(target)
    rejected_flag = "--rejected" if rejected or reason is None else "--reason"
    rejected = rejected or reason is not None
    n = DEFAULT_SAMPLE if sample is None else sample
    views = [flag for flag, on in (("--why", why is not None), ("--verify", verify), ("--decode", decode), (rejected_flag, rejected)) if on]
    if len(views) > 1:
        raise InspectError(f"{' and '.join(views)} are separate views: give one of them")
    if views and views[0] in ("--why", "--verify") and (sample is not None or where):
        raise InspectError(f"--sample and --where choose documents to show; {views[0]} takes none of them")
    if sample is not None and sample < 0:
        raise InspectError("--sample takes a number of documents, 0 or more")
    if not target.exists():
        raise InspectError(f"{target} does not exist: give a run directory (runs/sample) or one of its .arrow shards")

    if target.is_file():
        if why is not None or verify:
            raise InspectError(f"{views[0]} works on a whole run: give the run directory ({run_of(target) or 'RUN'}), not one shard")
        kind = _shard_kind(_schema_of(target))
        if decode:
            if kind != "tokens":
                raise InspectError(f"--decode reads token shards (tokens/train/shard-*.arrow); {target.name} holds {kind}")
            return decode_tokens([target], run_of(target), n, where, seed, target)
        if rejected and kind != "rejected":
            raise InspectError(f"--rejected reads rejected rows (RUN/rejected/<stage>/*.arrow); {target.name} holds {kind}")
        if sample is not None or where or rejected:
            return sample_rows([target], run_of(target), n, where, reason, seed, target)
        return summarize_shard(target)

    if not is_run(target):
        inside = run_of(target / MANIFEST)
        hint = f" it is a stage folder of the run {inside}:" if inside else ""
        raise InspectError(f"{target} is not a run directory (no ledger in {MANIFEST});{hint} give the run directory or one .arrow shard")
    run = target
    if why is not None:
        return {"mode": "why", "run": str(run), "why": explain(run, why)}
    if verify:
        return verify_run(run)
    if decode:
        files = token_files(run)
        if not files:
            raise InspectError(f"{run} has no token shards yet (tokens/): run the pipeline through the tokens stage")
        return decode_tokens(files, run, n, where, seed, run)
    if rejected:
        files = rejected_files(run)
        if reason is not None:
            _check_reason(run, reason)
        return sample_rows(files, run, n, where, reason, seed, run, source="rejected")
    if sample is not None or where:
        files = stage_files(run, "documents")
        if not files:
            raise InspectError(f"{run} has no documents yet (documents/): run the pipeline through the shard stage")
        return sample_rows(files, run, n, where, None, seed, run, source="documents")
    return summarize_run(run)


def _schema_of(path: Path) -> pa.Schema:
    try:
        return read_schema(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise InspectError(f"{path} is not an Arrow IPC stream shard: {err}") from None


def _check_reason(run: Path, reason: str) -> None:
    known = {f"{s['name']}/{r}" for s in _ledger(run).get("stages", []) for r in s.get("dropped", {})}
    names = known | {k.split("/", 1)[1] for k in known}
    if reason not in names:
        listed = ", ".join(sorted(known)) or "none: nothing was dropped"
        raise InspectError(f"no documents were dropped for reason {reason!r} in this run; reasons (stage/reason): {listed}")


# --- --where: a safe expression language over the columns ---------------------------------------------------------

WHERE_FUNCTIONS = {
    "contains": "contains(text, 'rust'): the string holds the substring",
    "icontains": "icontains(title, 'Rust'): the same, ignoring case",
    "startswith": "startswith(url, 'https://de.')",
    "endswith": "endswith(url, '.html')",
    "matches": "matches(url, 'wiki(pedia)?'): an RE2 regular expression matches somewhere in the string",
    "len": "len(text), len(input_ids), len(keyphrases): characters of a string, items of a list",
    "lower": "lower(title): the string in lowercase",
}
_COMPARE = {ast.Eq: "equal", ast.NotEq: "not_equal", ast.Lt: "less", ast.LtE: "less_equal", ast.Gt: "greater", ast.GtE: "greater_equal"}
_ARITHMETIC = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide"}
_MAX_WHERE = 2000


@dataclass
class _Term:
    """A translated piece of an expression: an Arrow expression (or a Python constant) and its kind of value."""

    value: Any
    kind: str  # string, number, bool, null, list, struct, time, other
    constant: bool = False
    type: pa.DataType | None = None  # the column's Arrow type, for a column or a struct field

    def expr(self) -> pc.Expression:
        return pc.scalar(self.value) if self.constant else self.value


def _kind(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_struct(t):
        return "struct"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return "list"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "time"
    return "other"


def columns_help(schema: pa.Schema) -> str:
    """The columns a --where can name, struct fields as signals.{n_chars, n_words, ...}."""
    parts = []
    for f in schema:
        if pa.types.is_struct(f.type):
            parts.append(f"{f.name}.{{{', '.join(f.type.field(i).name for i in range(f.type.num_fields))}}}")
        elif f.name != ROW:
            parts.append(f.name)
    return ", ".join(parts)


class WhereError(InspectError):
    pass


def parse_where(source: str, schema: pa.Schema) -> tuple[pc.Expression, set[str]]:
    """`lang == 'de' and signals.n_words > 500` -> (an Arrow expression, the top-level columns it reads)."""
    text = source.strip()
    if not text:
        raise WhereError("--where is empty: give a condition such as \"lang == 'en' and signals.n_words > 200\"")
    if len(text) > _MAX_WHERE:
        raise WhereError(f"--where is {len(text)} characters long; keep it under {_MAX_WHERE}")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as err:
        raise WhereError(f"--where {text!r} is not a valid expression ({err.msg}); write e.g. \"lang == 'de' and signals.n_words > 500\"") from None
    except (RecursionError, MemoryError, ValueError):
        raise WhereError(f"--where {text[:80]!r} is nested too deeply") from None
    translator = _Where(schema)
    try:
        term = translator.visit(tree.body)
    except RecursionError:
        raise WhereError(f"--where {text[:80]!r} is nested too deeply") from None
    if term.kind != "bool":
        raise WhereError(f"--where must be a condition (true or false for each row), but {ast.unparse(tree.body)!r} is a {term.kind} value; compare it, e.g. `... > 100`")
    if term.constant:
        term = _Term(pc.scalar(bool(term.value)), "bool")
    return term.value, translator.columns


class _Where:
    """Translates the allowed Python expression nodes into Arrow compute expressions; anything else is an error."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.columns: set[str] = set()

    def fail(self, node: ast.AST, why: str, hint: str = "syntax") -> WhereError:
        """An error naming the part of the expression at fault, with the syntax or the columns that would work."""
        help_ = {
            "syntax": "allowed: columns, 'strings', numbers, True/False/None, == != < <= > >=, in / not in [...], "
            f"and / or / not, + - * /, and the functions {', '.join(WHERE_FUNCTIONS)}",
            "columns": f"columns: {columns_help(self.schema)}",
            "functions": "functions: " + "; ".join(WHERE_FUNCTIONS.values()),
            "": "",
        }[hint]
        return WhereError(f"--where: {why} (in `{ast.unparse(node)}`)" + (f"; {help_}" if help_ else ""))

    def visit(self, node: ast.AST) -> _Term:
        handler = getattr(self, f"visit_{type(node).__name__}", None)
        if handler is None:
            raise self.fail(node, f"{type(node).__name__} is not supported")
        return handler(node)

    # values

    def visit_Constant(self, node: ast.Constant) -> _Term:
        value = node.value
        if value is None:
            return _Term(None, "null", True)
        if isinstance(value, bool):
            return _Term(value, "bool", True)
        if isinstance(value, (int, float)):
            return _Term(value, "number", True)
        if isinstance(value, str):
            return _Term(value, "string", True)
        raise self.fail(node, f"constants of type {type(value).__name__} are not supported")

    def visit_Name(self, node: ast.Name) -> _Term:
        if node.id not in self.schema.names or node.id == ROW:
            raise self.fail(node, f"unknown column {node.id!r}", "columns")
        self.columns.add(node.id)
        t = self.schema.field(node.id).type
        return _Term(pc.field(node.id), _kind(t), type=t)

    def visit_Attribute(self, node: ast.Attribute) -> _Term:
        path, base = [], node
        while isinstance(base, ast.Attribute):
            path.insert(0, base.attr)
            base = base.value
        if not isinstance(base, ast.Name):
            raise self.fail(node, "attributes are only struct fields of a column, like signals.n_words")
        if base.id not in self.schema.names:
            raise self.fail(node, f"unknown column {base.id!r}", "columns")
        t = self.schema.field(base.id).type
        for i, name in enumerate(path):
            where = ".".join([base.id, *path[:i]])
            if not pa.types.is_struct(t):
                raise self.fail(node, f"{where} is a {_kind(t)} column and has no field {name!r}", "columns")
            if t.get_field_index(name) < 0:
                fields = ", ".join(t.field(j).name for j in range(t.num_fields))
                raise self.fail(node, f"{where} has no field {name!r}; its fields: {fields}", "columns")
            t = t.field(name).type
        self.columns.add(base.id)
        return _Term(pc.field(base.id, *path), _kind(t), type=t)

    def visit_List(self, node: ast.AST) -> _Term:
        raise self.fail(node, "a list is allowed only after `in` / `not in`")

    visit_Tuple = visit_Set = visit_List

    # operators

    def visit_BoolOp(self, node: ast.BoolOp) -> _Term:
        terms = [self.condition(v) for v in node.values]
        expr = terms[0].expr()
        for term in terms[1:]:
            expr = (expr & term.expr()) if isinstance(node.op, ast.And) else (expr | term.expr())
        return _Term(expr, "bool")

    def condition(self, node: ast.AST) -> _Term:
        term = self.visit(node)
        if term.kind != "bool":
            raise self.fail(node, f"`and`, `or` and `not` join conditions, and this is a {term.kind} value", "")
        return term

    def visit_UnaryOp(self, node: ast.UnaryOp) -> _Term:
        if isinstance(node.op, ast.Not):
            return _Term(~self.condition(node.operand).expr(), "bool")
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            term = self.visit(node.operand)
            if term.kind != "number":
                raise self.fail(node, "a sign applies only to numbers", "")
            if isinstance(node.op, ast.UAdd):
                return term
            return _Term(-term.value, "number", True) if term.constant else _Term(pc.negate(term.value), "number")
        raise self.fail(node, f"the operator {type(node.op).__name__} is not supported")

    def visit_BinOp(self, node: ast.BinOp) -> _Term:
        name = _ARITHMETIC.get(type(node.op))
        if name is None:
            raise self.fail(node, f"the operator {type(node.op).__name__} is not supported (only + - * /)")
        left, right = self.visit(node.left), self.visit(node.right)
        if left.kind != "number" or right.kind != "number":
            raise self.fail(node, f"arithmetic needs numbers, not {left.kind} and {right.kind}", "")
        a, b = left.expr(), right.expr()
        if name == "divide":  # Arrow divides integers as integers; a ratio is what anyone means here
            a, b = a.cast(pa.float64()), b.cast(pa.float64())
        return _Term(getattr(pc, name)(a, b), "number")

    def visit_Compare(self, node: ast.Compare) -> _Term:
        parts, left = [], node.left
        for op, right in zip(node.ops, node.comparators):
            parts.append(self.compare(node, left, op, right))
            left = right
        expr = parts[0]
        for p in parts[1:]:
            expr = expr & p
        return _Term(expr, "bool")

    def compare(self, node: ast.AST, left_node: ast.AST, op: ast.cmpop, right_node: ast.AST) -> pc.Expression:
        if isinstance(op, (ast.In, ast.NotIn)):
            expr = self.membership(node, left_node, right_node)
            return ~expr if isinstance(op, ast.NotIn) else expr
        left, right = self.visit(left_node), self.visit(right_node)
        if isinstance(op, (ast.Is, ast.IsNot)):
            if not (right.kind == "null" and right.constant):
                raise self.fail(node, "`is` / `is not` compare only with None")
            return left.expr().is_valid() if isinstance(op, ast.IsNot) else left.expr().is_null()
        name = _COMPARE.get(type(op))
        if name is None:
            raise self.fail(node, f"the comparison {type(op).__name__} is not supported")
        for a, b in ((left, right), (right, left)):
            if b.kind == "null" and b.constant:
                if name not in ("equal", "not_equal"):
                    raise self.fail(node, "None compares only with == or != (or `is None`)")
                return a.expr().is_valid() if name == "not_equal" else a.expr().is_null()
        for a, b in ((left, right), (right, left)):  # a date or time as a string constant: '2024-05-01'
            if a.kind == "time" and b.kind == "string" and b.constant:
                b.value, b.kind = self.timestamp(node, a, b.value), "time"
        if left.kind != right.kind or left.kind in ("struct", "list", "other"):
            raise self.fail(node, f"cannot compare a {left.kind} with a {right.kind}", "")
        return getattr(pc, name)(left.expr(), right.expr())

    def timestamp(self, node: ast.AST, column: _Term, value: str) -> pa.Scalar:
        """'2024-05-01' (or an ISO date and time) as a scalar of the column's type; naive times are taken as UTC."""
        from datetime import UTC, datetime

        try:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None and getattr(column.type, "tz", None):
                moment = moment.replace(tzinfo=UTC)
            return pa.scalar(moment.date() if pa.types.is_date(column.type) else moment, type=column.type)
        except (ValueError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            raise self.fail(node, f"{value!r} is not a date or time (write '2024-05-01' or '2024-05-01T12:00:00')", "") from None

    def membership(self, node: ast.AST, left_node: ast.AST, right_node: ast.AST) -> pc.Expression:
        if isinstance(right_node, (ast.List, ast.Tuple, ast.Set)):
            left = self.visit(left_node)
            values = [self.visit(v) for v in right_node.elts]
            if left.constant or any(not v.constant for v in values):
                raise self.fail(node, "`in` needs a column on the left and a list of constants on the right")
            bad = [v for v in values if v.kind not in (left.kind, "null")]
            if bad:
                raise self.fail(node, f"the list mixes {bad[0].kind} values into a {left.kind} column", "")
            if left.kind == "time":
                values = [_Term(self.timestamp(node, left, v.value), "time", True) for v in values]
            try:
                value_set = pa.array([v.value for v in values], left.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
                raise self.fail(node, f"the list does not fit the column's type {left.type}", "") from None
            return pc.is_in(left.expr(), value_set=value_set)
        left, right = self.visit(left_node), self.visit(right_node)
        if left.kind == "string" and left.constant and right.kind == "string" and not right.constant:
            return pc.match_substring(right.expr(), left.value)
        raise self.fail(node, "`in` takes a list of constants (lang in ['de', 'fr']) or a substring ('rust' in text)")

    def visit_Call(self, node: ast.Call) -> _Term:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, "only named functions can be called", "functions")
        name = node.func.id
        if name not in WHERE_FUNCTIONS:
            raise self.fail(node, f"unknown function {name!r}", "functions")
        if node.keywords:
            raise self.fail(node, f"{name}() takes no keyword arguments")
        args = [self.visit(a) for a in node.args]
        if name in ("len", "lower"):
            if len(args) != 1:
                raise self.fail(node, f"{name}() takes one column")
            (arg,) = args
            if name == "len" and arg.kind == "list":
                return _Term(pc.list_value_length(arg.expr()), "number")
            if arg.kind != "string":
                raise self.fail(node, f"{name}() takes a string{' or list' if name == 'len' else ''}, not a {arg.kind}")
            return _Term(pc.utf8_length(arg.expr()) if name == "len" else pc.utf8_lower(arg.expr()), "number" if name == "len" else "string")
        if len(args) != 2 or args[0].kind != "string" or args[1].kind != "string" or not args[1].constant:
            raise self.fail(node, f"{name}() takes a string column and a 'string': {WHERE_FUNCTIONS[name]}")
        column, pattern = args[0].expr(), args[1].value
        fn = {
            "contains": lambda: pc.match_substring(column, pattern),
            "icontains": lambda: pc.match_substring(column, pattern, ignore_case=True),
            "startswith": lambda: pc.starts_with(column, pattern),
            "endswith": lambda: pc.ends_with(column, pattern),
            "matches": lambda: pc.match_substring_regex(column, pattern),
        }[name]
        return _Term(fn(), "bool")


# --- reading rows: match, draw at random, fetch ---------------------------------------------------------------------


def _matching_rows(files: list[Path], expr: pc.Expression | None, columns: set[str], where: str | None) -> Iterator[tuple[int, np.ndarray]]:
    """(file index, row numbers in that file) of the rows where `expr` holds, batch by batch."""
    for index, path in enumerate(files):
        offset = 0
        for batch in open_batches(path):
            n = batch.num_rows
            rows = np.arange(offset, offset + n)
            if expr is not None and n:
                table = pa.Table.from_batches([batch.select(sorted(columns))]) if columns else pa.table({"_": pa.nulls(n)})
                table = table.append_column(ROW, pa.array(rows))
                try:
                    rows = table.filter(expr).column(ROW).to_numpy()
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
                    raise WhereError(f"--where {where!r} could not be evaluated: {err}") from None
            offset += n
            if len(rows):
                yield index, rows


def _draw(matches: Iterator[tuple[int, np.ndarray]], n: int, seed: int) -> tuple[int, list[tuple[int, int]]]:
    """Reservoir sampling: n (file, row) pairs uniformly among all matches, in one pass; returns (matches, picks)."""
    rng = random.Random(seed)
    picks: list[tuple[int, int]] = []
    seen = 0
    for index, rows in matches:
        for row in rows.tolist():
            seen += 1
            if len(picks) < n:
                picks.append((index, row))
            else:
                j = rng.randrange(seen)
                if j < n:
                    picks[j] = (index, row)
    return seen, sorted(picks)


def _fetch(files: list[Path], picks: list[tuple[int, int]], columns: list[str]) -> list[tuple[Path, int, dict]]:
    """The picked rows with the given columns, in file order."""
    wanted: dict[int, list[int]] = defaultdict(list)
    for index, row in picks:
        wanted[index].append(row)
    out = []
    for index in sorted(wanted):
        rows, offset = sorted(wanted[index]), 0
        for batch in open_batches(files[index]):
            n = batch.num_rows
            local = [r - offset for r in rows if offset <= r < offset + n]
            if local:
                taken = batch.select([c for c in columns if c in batch.schema.names]).take(pa.array(local))
                out.extend((files[index], offset + r, row) for r, row in zip(local, taken.to_pylist()))
            offset += n
            if offset > rows[-1]:
                break
    return out


def _find(files: list[Path], column: str, value: str, columns: list[str] | None = None, limit: int = 1) -> list[tuple[Path, int, dict]]:
    """Rows whose `column` equals `value` (at most `limit`), reading only that column until a hit."""
    hits: list[tuple[Path, int, dict]] = []
    for path in files:
        offset = 0
        for batch in open_batches(path):
            if column in batch.schema.names:
                found = pc.indices_nonzero(pc.fill_null(pc.equal(batch.column(column), value), False)).to_pylist()
                if found:
                    b = batch.select([c for c in (columns or batch.schema.names) if c in batch.schema.names])
                    for i in found[: limit - len(hits)]:
                        hits.append((path, offset + i, b.slice(i, 1).to_pylist()[0]))
                    if len(hits) >= limit:
                        return hits
            offset += batch.num_rows
    return hits


# --- sample and decode ----------------------------------------------------------------------------------------------


def sample_rows(
    files: list[Path],
    run: Path | None,
    n: int,
    where: str | None,
    reason: str | None,
    seed: int,
    target: Path,
    source: str | None = None,
) -> dict:
    """n rows (documents or rejected rows) drawn at random among those matching `where` and `reason`."""
    if not files:
        raise InspectError(f"{target} has no {'rejected rows' if source == 'rejected' else source or 'rows'} to sample")
    schema = _schema_of(files[0])
    source = source or _shard_kind(schema)
    expr, columns = parse_where(where, schema) if where else (None, set())
    if reason is not None:
        stage, _, name = reason.rpartition("/")
        cond = pc.field("reason") == name
        if stage:
            cond = cond & (pc.field("stage") == stage)
        expr = cond if expr is None else expr & cond
        columns |= {"reason", "stage"}
    matched, picks = _draw(_matching_rows(files, expr, columns, where), n, seed)
    shown = [c for c in schema.names if c != "terms"]
    rows = []
    for path, row, values in _fetch(files, picks, shown):
        item = {"file": _rel(path, run), "row": row}
        item.update(values)
        rows.append(item)
    return {
        "mode": "sample",
        "target": str(target),
        "source": source,
        "where": where,
        "reason": reason,
        "seed": seed,
        "rows": sum(_rows(f) for f in files),
        "matched": matched,
        "sample": rows,
    }


def _rows(path: Path) -> int:
    return sum(batch.num_rows for batch in open_batches(path))


def _tokenizer(run: Path | None, shard: Path):
    """The run's tokenizer (tokenizers.Tokenizer) and its path; InspectError when the run has none."""
    path = run / "tokenizer" / "tokenizer.json" if run is not None else None
    if path is None or not path.is_file():
        raise InspectError(f"no tokenizer for {shard}: expected RUN/tokenizer/tokenizer.json of the run the shard belongs to")
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path)), path


def decode_tokens(files: list[Path], run: Path | None, n: int, where: str | None, seed: int, target: Path) -> dict:
    """n token sequences drawn at random, decoded back to text with the run's tokenizer, with their token counts."""
    schema = _schema_of(files[0])
    tokenizer, tok_path = _tokenizer(run, files[0])
    warnings = _tokenizer_warnings(files, tok_path)
    expr, columns = parse_where(where, schema) if where else (None, set())
    matched, picks = _draw(_matching_rows(files, expr, columns, where), n, seed)
    rows = []
    for path, row, values in _fetch(files, picks, ["doc_id", "input_ids"]):
        ids = values["input_ids"] or []
        text = tokenizer.decode(ids, skip_special_tokens=True)
        rows.append(
            {
                "file": _rel(path, run),
                "row": row,
                "doc_id": values["doc_id"],
                "split": path.parent.name if path.parent.name in ("train", "val") else None,
                "n_tokens": len(ids),
                "bytes_per_token": round(len(text.encode()) / len(ids), 3) if ids else None,
                "text": text,
            }
        )
    return {
        "mode": "decode",
        "target": str(target),
        "tokenizer": str(tok_path),
        "where": where,
        "seed": seed,
        "rows": sum(_rows(f) for f in files),
        "matched": matched,
        "sample": rows,
        "warnings": warnings,
    }


def _tokenizer_warnings(files: list[Path], tok_path: Path) -> list[str]:
    sha = sha256_file(tok_path)
    made_with = {(read_schema(f).metadata or {}).get(b"tokenizer_sha256", b"").decode() for f in files}
    made_with.discard("")
    if made_with and made_with != {sha}:
        return [f"these shards were made with tokenizer {', '.join(s[:12] for s in sorted(made_with))}, not {tok_path} ({sha[:12]}): the text may decode wrong"]
    return []


# --- summary --------------------------------------------------------------------------------------------------------


class _Quantiles:
    """min, quantiles, max and mean of a stream of numbers; exact up to `cap` values, then from a uniform sample."""

    def __init__(self, cap: int = QUANTILE_SAMPLE, seed: int = SEED):
        self.cap, self.rng = cap, np.random.default_rng(seed)
        self.values, self.keys = np.empty(0), np.empty(0)
        self.n, self.total, self.low, self.high = 0, 0.0, None, None
        self.integer = True  # integer inputs give integer quantiles (actual values: method "nearest")

    def add(self, array: pa.Array) -> None:
        self.integer = self.integer and pa.types.is_integer(array.type)
        values = pc.drop_null(array).to_numpy(zero_copy_only=False).astype(np.float64)
        if not len(values):
            return
        self.n += len(values)
        self.total += float(values.sum())
        self.low = values.min() if self.low is None else min(self.low, values.min())
        self.high = values.max() if self.high is None else max(self.high, values.max())
        self.values = np.concatenate([self.values, values])
        self.keys = np.concatenate([self.keys, self.rng.random(len(values))])
        if len(self.values) > self.cap:  # keep the `cap` values with the smallest random keys: a uniform sample
            keep = np.argpartition(self.keys, self.cap)[: self.cap]
            self.values, self.keys = self.values[keep], self.keys[keep]

    def result(self) -> dict | None:
        if not self.n:
            return None
        cast = int if self.integer else float
        q = {name: cast(np.percentile(self.values, p * 100, method="nearest")) for name, p in QUANTILES.items()}
        return {"documents": self.n, "min": cast(self.low), **q, "max": cast(self.high), "mean": round(self.total / self.n, 1), "exact": self.n <= self.cap}


class _Keyphrases:
    """Documents per keyphrase (and summed score) over all documents, in bounded memory."""

    def __init__(self, limit: int = KEYPHRASE_LIMIT):
        self.limit = limit
        self.counts: Counter = Counter()
        self.scores: Counter = Counter()
        self.pruned = False

    def add(self, column: pa.Array) -> None:
        flat = pc.list_flatten(column)
        if not len(flat):
            return
        table = pa.table({"phrase": flat.field("phrase"), "score": flat.field("score")})
        grouped = table.group_by("phrase").aggregate([("score", "count"), ("score", "sum")])
        for phrase, count, score in zip(*(grouped.column(c).to_pylist() for c in ("phrase", "score_count", "score_sum"))):
            if phrase:
                self.counts[phrase] += count
                self.scores[phrase] += score or 0.0
        if len(self.counts) > self.limit:
            for phrase, _ in self.counts.most_common()[self.limit // 2 :]:
                del self.counts[phrase], self.scores[phrase]
            self.pruned = True

    def top(self, k: int = TOP_KEYPHRASES) -> list[dict]:
        ranked = sorted(self.counts, key=lambda p: (-self.counts[p], -self.scores[p], p))[:k]
        return [{"phrase": p, "documents": self.counts[p], "score": round(self.scores[p], 4)} for p in ranked]


def _document_stats(files: list[Path], keyphrases: bool = True) -> dict:
    """Languages, character and word quantiles (from the signals) and top keyphrases of document shards."""
    langs: Counter = Counter()
    chars, words, phrases = _Quantiles(), _Quantiles(), _Keyphrases()
    for path in files:
        for batch in open_batches(path):
            names = batch.schema.names
            if "lang" in names:
                for item in pc.value_counts(batch.column("lang")).to_pylist():
                    langs[item["values"] or ""] += item["counts"]
            if "signals" in names:
                signals = batch.column("signals")
                if signals.type.get_field_index("n_chars") >= 0:
                    chars.add(signals.field("n_chars"))
                if signals.type.get_field_index("n_words") >= 0:
                    words.add(signals.field("n_words"))
            if keyphrases and "keyphrases" in names:
                phrases.add(batch.column("keyphrases"))
    return {"languages": langs, "chars": chars.result(), "words": words.result(), "keyphrases": phrases.top(), "keyphrases_exact": not phrases.pruned}


def _token_stats(files: list[Path]) -> dict | None:
    """Tokens per document (quantiles) and in all, per split folder (train, val) too."""
    counts, splits = _Quantiles(), Counter()
    for path in files:
        for batch in open_batches(path):
            lengths = pc.list_value_length(batch.column("input_ids"))
            counts.add(lengths)
            splits[path.parent.name] += pc.sum(lengths).as_py() or 0
    result = counts.result()
    if result is not None:
        result["total"] = int(counts.total)
        result["splits"] = dict(splits)
    return result


def _funnel(stages: list[dict]) -> tuple[list[dict], list[str]]:
    total = stages[0]["in"] if stages else 0
    funnel, warnings = [], []
    for s in stages:
        dropped = sum(s.get("dropped", {}).values())
        reasons = [
            {
                "reason": reason,
                "documents": n,
                "pct_of_stage": _pct(n, s["in"]),
                "pct_of_input": _pct(n, total),
            }
            for reason, n in sorted(s.get("dropped", {}).items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        funnel.append({"stage": s["name"], "in": s["in"], "out": s["out"], "dropped": dropped, "pct_kept": _pct(s["out"], s["in"]), "reasons": reasons, "seconds": s.get("seconds")})
        if s["in"] != s["out"] + dropped:
            warnings.append(f"ledger of {s['name']} does not add up: in {s['in']} != out {s['out']} + dropped {dropped}")
    return funnel, warnings


def _pct(n: int, of: int) -> float | None:
    return round(100 * n / of, 2) if of else None


def _directories(run: Path) -> dict:
    dirs = {}
    names = [d.name for d in sorted(run.iterdir()) if d.is_dir() and (d / MANIFEST).is_file()]
    for name in sorted(names, key=lambda n: (STAGE_DIRS.index(n) if n in STAGE_DIRS else len(STAGE_DIRS), n)):
        manifest = read_manifest(run / name)
        if manifest is None:
            continue
        dirs[name] = {
            "stage": manifest.stage,
            "rows": sum(f.rows for f in manifest.files if f.path.endswith(".arrow")),
            "bytes": sum(f.bytes for f in manifest.files),
            "files": [{"path": f"{name}/{f.path}", "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256} for f in manifest.files],
            "rejected": [{"path": f.path, "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256} for f in manifest.rejected],
            "schema": manifest.schema,
            "fingerprint": manifest.fingerprint,
            "extra": manifest.extra,
        }
    return dirs


def _schemas(run: Path) -> dict:
    out = {}
    for name, files in (("documents", stage_files(run, "documents")), ("rejected", rejected_files(run)), ("tokens", token_files(run))):
        if files:
            out[name] = {f.name: str(f.type) for f in read_schema(files[0])}
    return out


def summarize_run(run: Path) -> dict:
    """The ledger as a funnel, languages, lengths, keyphrases and the files of every stage."""
    ledger = _ledger(run)
    stages = ledger.get("stages", [])
    funnel, warnings = _funnel(stages)
    documents = _document_stats(stage_files(run, "documents"))
    extracted = _document_stats(stage_files(run, "extracted"), keyphrases=False)
    kept, seen = documents["languages"], extracted["languages"]
    n_kept = sum(kept.values())
    languages = [
        {"lang": lang, "documents": kept[lang], "pct": _pct(kept[lang], n_kept), "extracted": seen.get(lang, 0)}
        for lang in sorted(set(kept) | set(seen), key=lambda lang: (-kept[lang], -seen[lang], lang))
    ]
    tokens = _token_stats(token_files(run))
    return {
        "mode": "summary",
        "run": str(run),
        "stages": stages,
        "funnel": funnel,
        "drops": {f"{s['name']}/{r}": n for s in stages for r, n in s.get("dropped", {}).items()},
        "errors": ledger.get("errors", []),
        "outputs": ledger.get("outputs", {}),
        "documents": n_kept,
        "languages": languages,
        "lengths": {"chars": documents["chars"], "words": documents["words"], "tokens": tokens},
        "lengths_extracted": {"chars": extracted["chars"], "words": extracted["words"]},
        "tokens": {split: (tokens or {}).get("splits", {}).get(split, 0) for split in ("train", "val")},
        "keyphrases": documents["keyphrases"],
        "keyphrases_exact": documents["keyphrases_exact"],
        "directories": _directories(run),
        "schemas": _schemas(run),
        "warnings": warnings,
    }


def summarize_shard(path: Path) -> dict:
    """One Arrow file: what it holds, whether its checksum matches its stage's manifest, its statistics, a preview."""
    schema = _schema_of(path)
    kind = _shard_kind(schema)
    run = run_of(path)
    sha = sha256_file(path)
    listed = _listed_sha(run, path) if run else None
    result: dict = {
        "mode": "shard",
        "shard": str(path),
        "run": str(run) if run else None,
        "kind": kind,
        "rows": _rows(path),
        "bytes": path.stat().st_size,
        "sha256": sha,
        "manifest": None if listed is None else ("ok" if listed == sha else "mismatch"),
        "schema": {f.name: str(f.type) for f in schema},
        "metadata": {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()},
        "stats": {},
        "sample": [],
        "warnings": [],
    }
    if kind in ("documents", "rejected"):
        stats = _document_stats([path])
        stats["languages"] = dict(stats["languages"].most_common())
        if kind == "rejected":
            stats["reasons"] = dict(_value_counts([path], "reason").most_common())
        result["stats"] = stats
        result["sample"] = sample_rows([path], run, SHARD_PREVIEW, None, None, SEED, path)["sample"]
    elif kind == "tokens":
        result["stats"] = {"tokens": _token_stats([path])}
        try:
            decoded = decode_tokens([path], run, SHARD_PREVIEW, None, SEED, path)
            result["sample"], result["warnings"] = decoded["sample"], decoded["warnings"]
        except InspectError as err:
            result["warnings"].append(f"{err}; showing token counts only")
    elif kind == "keep_mask":
        kept = sum(pc.sum(b.column("keep")).as_py() or 0 for b in open_batches(path))
        result["stats"] = {"kept": kept, "dropped": result["rows"] - kept}
    elif kind == "clusters":
        result["stats"] = {"match": dict(_value_counts([path], "match").most_common()) if "match" in schema.names else {}}
    if kind in ("keep_mask", "clusters", "other"):
        first = next(open_batches(path), None)
        result["sample"] = [_short_row(r) for r in first.slice(0, SHARD_PREVIEW).to_pylist()] if first is not None else []
    return result


def _value_counts(files: list[Path], column: str) -> Counter:
    counts: Counter = Counter()
    for path in files:
        for batch in open_batches(path):
            for item in pc.value_counts(batch.column(column)).to_pylist():
                counts[item["values"] if item["values"] is not None else ""] += item["counts"]
    return counts


def _short_row(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if isinstance(value, (list, bytes)) and len(value) > 8:
            value = f"{value[:8]!r}… ({len(value)} items)"
        out[key] = value
    return out


def _listed_sha(run: Path, path: Path) -> str | None:
    rel = _rel(path, run)
    for d in run.iterdir():
        manifest = read_manifest(d) if d.is_dir() else None
        if manifest is None:
            continue
        for entry in manifest.files:
            if f"{d.name}/{entry.path}" == rel:
                return entry.sha256
        for entry in manifest.rejected:
            if entry.path == rel:
                return entry.sha256
    return None


# --- why ------------------------------------------------------------------------------------------------------------


def explain(run: Path, doc_id: str) -> dict:
    """One document's journey: where it came from, each stage's verdict, and where it ended (or `status: unknown`).

    A URL works too: the first document fetched from it is followed, and `others` lists the rest.
    """
    extracted = stage_files(run, "extracted")
    rejected_any = rejected_files(run)
    others: list[str] = []
    hit = _find(extracted, "id", doc_id)
    if not hit and "://" in doc_id:
        by_url = _find(extracted, "url", doc_id, ["id"], limit=50) or _find(rejected_any, "url", doc_id, ["id"], limit=50)
        if by_url:
            others = [values["id"] for _, _, values in by_url[1:]]
            doc_id = by_url[0][2]["id"]
            hit = _find(extracted, "id", doc_id)
    why: dict = {"id": doc_id, "status": "unknown", "steps": []}
    if others:
        why["others"] = others
    if hit:
        path, row, doc = hit[0]
        _journey(run, why, path, row, doc)
        return why
    dropped = _find(rejected_any, "id", doc_id)
    if dropped:
        path, _, doc = dropped[0]
        _provenance(why, doc)
        why.update(status="rejected", stage=doc["stage"], reason=doc["reason"], detail=doc["detail"], kept_id=doc["kept_id"])
        why["steps"].append({"stage": doc["stage"], "verdict": "dropped", "reason": doc["reason"], "detail": doc["detail"], "file": _rel(path, run)})
        return why
    example = next((b.column("id")[0].as_py() for f in stage_files(run, "extracted")[:1] for b in open_batches(f) if b.num_rows), None)
    hint = f"; ids look like {example!r}" if example else ""
    why["detail"] = f"no document {doc_id!r} in {run}: not in extracted/ nor rejected/ (a document id or its URL){hint}"
    return why


def _provenance(why: dict, doc: dict) -> None:
    for key in ("url", "title", "source", "offset", "fetched_at", "lang"):
        if doc.get(key) not in (None, ""):
            why[key] = doc[key] if key != "fetched_at" else str(doc[key])


def _journey(run: Path, why: dict, part: Path, row: int, doc: dict) -> None:
    from corpus.stages.filter import keep_mask_name

    steps = why["steps"]
    _provenance(why, doc)
    signals = doc.get("signals") or {}
    steps.append(
        {
            "stage": "extract",
            "verdict": "ok",
            "detail": f"{signals.get('n_chars') or 0:,} characters, {signals.get('n_words') or 0:,} words, language {doc.get('lang') or '?'} ({doc.get('lang_score') or 0:.2f})",
            "file": _rel(part, run),
            "row": row,
        }
    )
    why["status"] = "pending"

    mask = run / "filter" / keep_mask_name(part)
    if not mask.is_file():
        steps.append({"stage": "filter", "verdict": "not run"})
        return
    from corpus.shards import read_keep_mask

    if not read_keep_mask(mask)[row].as_py():
        found = _find(rejected_files(run, "filter"), "id", why["id"], ["reason", "detail"])
        reason, detail = (found[0][2]["reason"], found[0][2]["detail"]) if found else ("?", "its rejected row is missing")
        steps.append({"stage": "filter", "verdict": "dropped", "reason": reason, "detail": detail, "signals": _signals_named(detail, signals)})
        why.update(status="rejected", stage="filter", reason=reason, detail=detail, kept_id=None)
        return
    steps.append({"stage": "filter", "verdict": "kept", "detail": "passed every rule"})

    clusters = run / "dedup" / "clusters.arrow"
    if not (run / "dedup" / MANIFEST).is_file():
        steps.append({"stage": "dedup", "verdict": "not run"})
        return
    member = _find([clusters], "doc_id", why["id"]) if clusters.is_file() else []
    if member and member[0][2]["match"] != "kept" and member[0][2]["kept_id"] != why["id"]:
        m = member[0][2]
        found = _find(rejected_files(run, "dedup"), "id", why["id"], ["reason", "detail"])
        reason = found[0][2]["reason"] if found else f"{m['match']}_duplicate"
        detail = found[0][2]["detail"] if found else f"duplicate of {m['kept_id']}"
        kept = _find(_extracted_or_documents(run), "id", m["kept_id"], ["url", "title"])
        step = {"stage": "dedup", "verdict": "dropped", "reason": reason, "detail": detail, "kept_id": m["kept_id"], "cluster_id": m["cluster_id"], "jaccard": round(float(m["jaccard"]), 4), "match": m["match"]}
        if kept:
            step["kept_url"] = kept[0][2]["url"]
        steps.append(step)
        why.update(status="rejected", stage="dedup", reason=reason, detail=detail, kept_id=m["kept_id"], cluster_id=m["cluster_id"], jaccard=step["jaccard"])
        return
    if member:
        cluster = member[0][2]["cluster_id"]
        dups = [r for r in _cluster_members([clusters], cluster) if r["doc_id"] != why["id"]]
        detail = f"first of a cluster of {len(dups) + 1}; its duplicates were dropped: " + ", ".join(
            f"{r['doc_id']} ({r['match']}, Jaccard {r['jaccard']:.2f})" for r in dups[:5]
        ) + (f" and {len(dups) - 5} more" if len(dups) > 5 else "")
        steps.append({"stage": "dedup", "verdict": "kept", "detail": detail, "cluster_id": cluster, "duplicates": [r["doc_id"] for r in dups]})
        why["cluster_id"] = cluster
    else:
        steps.append({"stage": "dedup", "verdict": "kept", "detail": "no duplicate found"})

    shard = _find(stage_files(run, "documents"), "id", why["id"], ["split"])
    if not shard:
        steps.append({"stage": "shard", "verdict": "not run" if not (run / "documents" / MANIFEST).is_file() else "missing", "detail": "not in documents/"})
        return
    path, srow, values = shard[0]
    split = values["split"]
    steps.append({"stage": "shard", "verdict": "kept", "detail": f"{_rel(path, run)} row {srow}, split {split}", "file": _rel(path, run), "row": srow, "split": split})
    why.update(status="kept", shard=_rel(path, run), split=split)

    tokens = _find(stage_files(run, "tokens", split) or token_files(run), "doc_id", why["id"], ["input_ids"])
    if tokens:
        tpath, trow, tvalues = tokens[0]
        n = len(tvalues["input_ids"] or [])
        steps.append({"stage": "tokens", "verdict": "ok", "detail": f"{n:,} tokens in {_rel(tpath, run)} row {trow}", "file": _rel(tpath, run), "row": trow, "n_tokens": n})
        why["n_tokens"] = n
    elif (run / "tokens" / MANIFEST).is_file():
        steps.append({"stage": "tokens", "verdict": "missing", "detail": "not in tokens/"})
    if (run / "model" / MANIFEST).is_file():
        detail = "in the training split" if split == "train" else "held out: the validation loss is measured on it"
        steps.append({"stage": "pretrain", "verdict": "ok", "detail": detail})


def _extracted_or_documents(run: Path) -> list[Path]:
    return stage_files(run, "documents") + stage_files(run, "extracted")


def _cluster_members(files: list[Path], cluster: str) -> list[dict]:
    out = []
    for path in files:
        for batch in open_batches(path):
            hit = batch.filter(pc.equal(batch.column("cluster_id"), cluster))
            out.extend(hit.to_pylist())
    return out


def _signals_named(detail: str, signals: dict) -> dict:
    """The document's values of the signals a rule's detail names (n_words=33 < min_words=50 -> {n_words: 33})."""
    return {k: v for k, v in signals.items() if re.search(rf"(?<!\w){re.escape(k)}=", detail)}


# --- verify ---------------------------------------------------------------------------------------------------------


def verify_run(run: Path) -> dict:
    """Recompute the sha256 of every file every stage manifest lists; also flag files no manifest lists, stage
    folders without a manifest, and token shards made with another tokenizer than the run's."""
    problems: list[str] = []
    checked, nbytes, stages = 0, 0, []
    listed: set[Path] = set()
    for d in sorted(p for p in run.iterdir() if p.is_dir() and not p.name.startswith(".")):
        manifest = read_manifest(d)
        if manifest is None:
            if (d / MANIFEST).exists() or d.name in STAGE_DIRS:
                problems.append(f"{d.name}/: {MANIFEST} missing or unreadable, so nothing in it can be checked")
            continue
        stages.append(d.name)
        problems += [_rel_problem(p, run) for p in verify_stage(d)]
        for entry in manifest.files:
            listed.add((d / entry.path).resolve())
            checked, nbytes = checked + 1, nbytes + entry.bytes
        for entry in manifest.rejected:
            listed.add((run / entry.path).resolve())
            checked, nbytes = checked + 1, nbytes + entry.bytes
        for path in sorted(d.rglob("*")):
            if path.is_file() and path.name != MANIFEST and not path.name.startswith(".") and path.resolve() not in listed:
                problems.append(f"{_rel(path, run)}: not listed in {d.name}/{MANIFEST} (a stray or foreign file)")
    for path in rejected_files(run):
        if path.resolve() not in listed:
            problems.append(f"{_rel(path, run)}: not listed in any stage's {MANIFEST}")
    tokenizer = run / "tokenizer" / "tokenizer.json"
    if tokenizer.is_file() and token_files(run):
        problems += _tokenizer_warnings(token_files(run), tokenizer)
    return {"mode": "verify", "run": str(run), "verify": {"ok": not problems, "stages": stages, "files": checked, "bytes": nbytes, "problems": problems}}


def _rel_problem(problem: str, run: Path) -> str:
    prefix = f"{run.resolve()}/"
    return problem.replace(prefix, "").replace(f"{run}/", "")


# --- rendering for people -------------------------------------------------------------------------------------------


def render(result: dict, console) -> None:
    """Print a view for people: tables for the summary, one block per document, the journey as one line per stage."""
    {
        "summary": _render_summary,
        "shard": _render_shard,
        "sample": _render_sample,
        "decode": _render_decode,
        "why": _render_why,
        "verify": _render_verify,
    }[result["mode"]](result, console)


def _say(console, text: str = "", style: str | None = None) -> None:
    console.print(text, style=style, markup=False, highlight=False)


def _table(title: str, columns: list[tuple[str, str]]):
    from rich.table import Table

    table = Table(title=title, title_justify="left", title_style="bold", box=None, pad_edge=False, padding=(0, 1))
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=True)
    return table


def _add(table, *cells, style: str | None = None) -> None:
    from rich.text import Text

    table.add_row(*(Text("" if c is None else str(c)) for c in cells), style=style)


def _num(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)


def _pct_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _render_summary(r: dict, console) -> None:
    funnel = r["funnel"]
    first = funnel[0]["in"] if funnel else 0
    tokens = r["tokens"]
    head = f"run {r['run']}: {first:,} input records -> {r['documents']:,} documents"
    if any(tokens.values()):
        head += f", {tokens.get('train', 0):,} train + {tokens.get('val', 0):,} val tokens"
    _say(console, head, "bold")

    table = _table("\nfunnel (drops in % of the stage's input / of all input records)", [("stage", "left"), ("in", "right"), ("out", "right"), ("dropped", "right"), ("% stage", "right"), ("% input", "right"), ("seconds", "right")])
    for s in funnel:
        _add(table, s["stage"], _num(s["in"]), _num(s["out"]), _num(s["dropped"]) if s["dropped"] else "-", _pct_text(_pct(s["dropped"], s["in"])) if s["dropped"] else "", _pct_text(_pct(s["dropped"], first)) if s["dropped"] else "", f"{s['seconds']:.1f}" if s.get("seconds") is not None else "", style="bold")
        for d in s["reasons"]:
            _add(table, f"  {d['reason']}", "", "", _num(d["documents"]), _pct_text(d["pct_of_stage"]), _pct_text(d["pct_of_input"]), "")
    console.print(table)
    for w in r["warnings"]:
        _say(console, f"warning: {w}", "yellow")
    for err in r["errors"]:
        where = f" at byte {err['offset']}" if err.get("offset") is not None else ""
        _say(console, f"damaged input: {err.get('path')}{where}: {err.get('error')}", "yellow")
    pretrain = next((s for s in r["stages"] if s["name"] == "pretrain" and s.get("metrics")), None)
    if pretrain:
        m = pretrain["metrics"]
        _say(console, f"pretrain: {m.get('steps')} steps, val loss {m.get('initial_val_loss', 0):.3f} -> {m.get('final_val_loss', 0):.3f}, {m.get('val_bits_per_byte', 0):.3f} bits/byte, {m.get('n_params', 0):,} parameters on {m.get('device')}")

    if r["languages"]:
        table = _table(f"\nlanguages ({len(r['languages'])})", [("lang", "left"), ("documents", "right"), ("%", "right"), ("extracted", "right"), ("kept of extracted", "right")])
        for lang in r["languages"][:15]:
            _add(table, lang["lang"] or "(none)", _num(lang["documents"]), _pct_text(lang["pct"]), _num(lang["extracted"]), _pct_text(_pct(lang["documents"], lang["extracted"])))
        console.print(table)
        if len(r["languages"]) > 15:
            rest = r["languages"][15:]
            _say(console, f"  … {len(rest)} more languages: {sum(x['documents'] for x in rest):,} kept of {sum(x['extracted'] for x in rest):,} extracted")

    before = r["lengths_extracted"]
    lengths = [
        (name, q)
        for name, q in (
            ("characters", r["lengths"]["chars"]),
            ("words", r["lengths"]["words"]),
            ("tokens", r["lengths"]["tokens"]),
            ("characters, extracted", before["chars"]),
            ("words, extracted", before["words"]),
        )
        if q
    ]
    if lengths:
        table = _table("\nlength per document (kept documents; extracted = before filter and dedup)", [("", "left"), ("docs", "right"), ("min", "right"), ("p10", "right"), ("median", "right"), ("p90", "right"), ("max", "right"), ("mean", "right")])
        for name, q in lengths:
            _add(table, name, _num(q["documents"]), _num(q["min"]), _num(q["p10"]), _num(q["p50"]), _num(q["p90"]), _num(q["max"]), _num(q["mean"]))
        console.print(table)

    if r["keyphrases"]:
        _say(console, "\ntop keyphrases (documents)" + ("" if r["keyphrases_exact"] else " (approximate: rare phrases pruned)"), "bold")
        _say(console, "  " + ", ".join(f"{k['phrase']} ({k['documents']})" for k in r["keyphrases"]))

    table = _table("\nfiles (sha256 from the manifests; --verify recomputes them)", [("file", "left"), ("rows", "right"), ("size", "right"), ("sha256", "left")])
    for name, d in r["directories"].items():
        files = d["files"]
        if name in ("documents", "tokens", "tokenizer"):
            for f in files[:SHARD_FILES_SHOWN]:
                _add(table, f["path"], _num(f["rows"]) if f["path"].endswith(".arrow") else "", _size(f["bytes"]), f["sha256"][:12])
            if len(files) > SHARD_FILES_SHOWN:
                _add(table, f"{name}/ … {len(files) - SHARD_FILES_SHOWN} more files (--json lists all)", "", "", "")
        _add(table, f"{name}/  ({len(files)} files)", _num(d["rows"]) if d["rows"] else "", _size(d["bytes"]), "", style="bold")
    rejected = [f for d in r["directories"].values() for f in d["rejected"]]
    if rejected:
        _add(table, f"rejected/  ({len(rejected)} files)", _num(sum(f["rows"] for f in rejected)), _size(sum(f["bytes"] for f in rejected)), "", style="bold")
    console.print(table)

    docs = r["schemas"].get("documents")
    if docs:
        _say(console, "\ndocument columns (for --where): " + _columns_line(docs))
    _say(console, "\nmore: --sample N [--where \"lang == 'en' and signals.n_words > 500\"] | --rejected [--reason R] | --decode | --why ID | --verify | --json", "dim")


def _columns_line(schema: dict) -> str:
    parts = []
    for name, t in schema.items():
        if t.startswith("struct<"):
            fields = [f.split(":")[0].strip() for f in t[len("struct<") : -1].split(", ") if ":" in f]
            parts.append(f"{name}.{{{', '.join(fields)}}}")
        else:
            parts.append(name)
    return ", ".join(parts)


def _render_shard(r: dict, console) -> None:
    _say(console, f"{r['shard']}: {r['kind']}, {r['rows']:,} rows, {_size(r['bytes'])}", "bold")
    check = {"ok": "matches its manifest", "mismatch": "DOES NOT MATCH its manifest", None: "not listed in a manifest"}[r["manifest"]]
    _say(console, f"  sha256    {r['sha256']} ({check})", "red" if r["manifest"] == "mismatch" else None)
    _say(console, "  columns   " + ", ".join(f"{k}: {v if len(v) < 60 else v[:57] + '…'}" for k, v in r["schema"].items()))
    if r["metadata"]:
        _say(console, "  metadata  " + ", ".join(f"{k}={v}" for k, v in r["metadata"].items()))
    stats = r["stats"]
    if r["kind"] in ("documents", "rejected"):
        langs = stats["languages"]
        _say(console, "  languages " + ", ".join(f"{k or '(none)'} {v}" for k, v in list(langs.items())[:12]))
        for name in ("chars", "words"):
            if stats[name]:
                _say(console, f"  {name:<9} {_quantile_line(stats[name])}")
        if stats.get("reasons"):
            _say(console, "  reasons   " + ", ".join(f"{k} {v}" for k, v in stats["reasons"].items()))
    elif r["kind"] == "tokens" and stats.get("tokens"):
        t = stats["tokens"]
        _say(console, f"  tokens    {t['total']:,} in all; per document {_quantile_line(t)}")
    elif stats:
        for key, value in stats.items():
            shown = ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else f"{value:,}"
            _say(console, f"  {key:<9} {shown}")
    for w in r["warnings"]:
        _say(console, f"  warning: {w}", "yellow")
    if r["sample"]:
        _say(console, f"\n{len(r['sample'])} row{'s' if len(r['sample']) != 1 else ''} drawn at random (--sample N for others)" if r["kind"] in ("documents", "rejected", "tokens") else "\nfirst rows", "bold")
    for i, row in enumerate(r["sample"], 1):
        if r["kind"] in ("documents", "rejected"):
            _document_block(console, i, row)
        elif r["kind"] == "tokens":
            _decoded_block(console, i, row)
        else:
            _say(console, f"[{i}] " + ", ".join(f"{k}={v}" for k, v in row.items()))


def _quantile_line(q: dict) -> str:
    return f"min {_num(q['min'])}, p10 {_num(q['p10'])}, median {_num(q['p50'])}, p90 {_num(q['p90'])}, max {_num(q['max'])}, mean {_num(q['mean'])}"


def _render_sample(r: dict, console) -> None:
    what = "rejected rows" if r["source"] == "rejected" else "documents"
    cond = " and ".join(x for x in (f"with reason {r['reason']}" if r["reason"] else "", f"where {r['where']}" if r["where"] else "") if x)
    head = f"{len(r['sample'])} of {r['matched']:,} {what}" + (f" {cond} ({r['rows']:,} in all)" if cond else "") + f", drawn at random (seed {r['seed']})"
    _say(console, head, "bold")
    if not r["sample"]:
        _say(console, "nothing matches" if r["rows"] else "no rows", "yellow")
    for i, row in enumerate(r["sample"], 1):
        _document_block(console, i, row)


def _document_block(console, i: int, row: dict) -> None:
    _say(console, f"\n[{i}] {row.get('title') or '(no title)'}", "bold")
    if row.get("url"):
        _say(console, f"    {row['url']}")
    meta = [row.get("id") or "", f"lang {row.get('lang') or '?'} ({row.get('lang_score') or 0:.2f})"]
    if row.get("split"):
        meta.append(f"split {row['split']}")
    meta.append(f"{row['file']} row {row['row']}")
    _say(console, "    " + "  ".join(meta), "dim")
    if row.get("stage"):
        _say(console, f"    REJECTED at {row['stage']}: {row['reason']}: {row['detail']}", "red")
        if row.get("kept_id"):
            _say(console, f"    kept instead: {row['kept_id']}", "red")
    signals = row.get("signals") or {}
    shown = {k: v for k, v in signals.items() if v not in (None, 0, 0.0, False)}
    if signals:
        line = " ".join(f"{k}={_compact(v)}" for k, v in shown.items())
        hidden = len(signals) - len(shown)
        _say(console, f"    signals  {line}" + (f"  ({hidden} more are 0/none)" if hidden else ""))
    if row.get("keyphrases"):
        _say(console, "    keyphrases  " + ", ".join(f"{k['phrase']} ({k['score']:.2f})" for k in row["keyphrases"][:10]))
    _text_block(console, row.get("text") or "", total=signals.get("n_chars"))


def _compact(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _text_block(console, text: str, total: int | None = None) -> None:
    shown = text[:TEXT_SHOWN]
    lines = [line.strip() for line in shown.splitlines() if line.strip()][:12]
    for line in lines:
        _say(console, f"    │ {line}")
    length = total if total is not None else len(text)
    if len(text) > len(shown) or (total is not None and total > len(shown)):
        _say(console, f"    │ … ({len(shown):,} of {length:,} characters shown)", "dim")


def _render_decode(r: dict, console) -> None:
    cond = f" where {r['where']} ({r['rows']:,} in all)" if r["where"] else ""
    _say(console, f"{len(r['sample'])} of {r['matched']:,} token sequences{cond}, drawn at random (seed {r['seed']}), decoded with {r['tokenizer']}", "bold")
    for w in r["warnings"]:
        _say(console, f"warning: {w}", "yellow")
    for i, row in enumerate(r["sample"], 1):
        _decoded_block(console, i, row)


def _decoded_block(console, i: int, row: dict) -> None:
    bpt = f", {row['bytes_per_token']:.2f} bytes per token" if row.get("bytes_per_token") else ""
    split = f"  split {row['split']}" if row.get("split") else ""
    _say(console, f"\n[{i}] {row['doc_id']}: {row['n_tokens']:,} tokens{bpt}{split}", "bold")
    _say(console, f"    {row['file']} row {row['row']}", "dim")
    _text_block(console, row["text"])


def _render_why(r: dict, console) -> None:
    w = r["why"]
    _say(console, f"{w['id']}" + (f"  {w['title']}" if w.get("title") else ""), "bold")
    if w.get("url"):
        _say(console, f"  url       {w['url']}")
    if w.get("source"):
        fetched = f", fetched {w['fetched_at']}" if w.get("fetched_at") else ""
        _say(console, f"  source    {w['source']}, byte {w.get('offset')}{fetched}")
    for step in w["steps"]:
        verdict = step["verdict"]
        text = f"{step['reason']}: {step['detail']}" if verdict == "dropped" else step.get("detail", "")
        style = "red" if verdict == "dropped" else ("yellow" if verdict in ("not run", "missing") else None)
        _say(console, f"  {step['stage']:<9} {verdict.upper() if verdict == 'dropped' else verdict}  {text}".rstrip(), style)
        if step.get("kept_id"):
            kept = f"  {step['kept_url']}" if step.get("kept_url") else ""
            _say(console, f"            kept instead: {step['kept_id']}{kept} (cluster {step['cluster_id']}, {step['match']} match, Jaccard {step['jaccard']:.2f})", style)
    status = w["status"]
    if status == "kept":
        tokens = f", {w['n_tokens']:,} tokens" if "n_tokens" in w else ""
        _say(console, f"=> kept: {w['shard']} (split {w['split']}){tokens}", "green")
    elif status == "rejected":
        _say(console, f"=> dropped at {w['stage']}: {w['reason']}", "red")
    else:
        _say(console, "=> not dropped so far; later stages have not run yet", "yellow")
    if w.get("others"):
        _say(console, f"({len(w['others'])} more documents have this URL: {', '.join(w['others'][:5])})", "dim")


def _render_verify(r: dict, console) -> None:
    v = r["verify"]
    what = f"{v['files']:,} files ({_size(v['bytes'])}) in {len(v['stages'])} stage folders: {', '.join(v['stages'])}"
    if v["ok"]:
        _say(console, f"verify: every sha256 matches: {what}", "green")
        return
    _say(console, f"verify FAILED: {len(v['problems'])} problem(s) in {what}", "red")
    for p in v["problems"]:
        _say(console, f"  {p}", "red")
