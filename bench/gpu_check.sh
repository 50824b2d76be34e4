#!/usr/bin/env bash
# Issue 7's GPU figures in one call on the device machine (one H200), about 6 minutes at most:
#
#   1. environment: nvidia-smi, python, torch, CUDA (and what is missing, installed from carried wheels)
#   2. bench/gpu_sanity.py       bf16 matmul ceiling; SDPA kernel used; bf16 autocast; fused AdamW; memory
#   3. bench/gpu_train.py        GPT-2 124M, 200 steps, B=32, T=1024, bf16, torch.compile, through
#                                training.pretrain.pretrain: tokens/s, MFU, data wait, raw loop (targets: 400K tok/s,
#                                40% MFU, data wait <= 2% of step time); without compile if the compiled run failed
#   4. bench/gpu_launch_check.py torchrun + NCCL + DDP, one rank, tiny model (only if time is left)
#   5. the same benchmark without torch.compile, 60 steps (only if time is left): what compile gains
#   then a summary table; everything goes to $OUT (gpu_check.log, summary.json, one JSON per step).
#
# Usage:
#   bash bench/gpu_check.sh prepare            # HERE, once: .gpucheck/ = wheels (pydantic for cp312) + the texts
#                                              # and GPT-2 tokenizer from ../shared/data; name .gpucheck in `carry`
#   OUT=/some/dir bash bench/gpu_check.sh      # on the device machine, from the repository root
#   GPU_CHECK_CPU=1 OUT=/tmp/gpucheck-out bash bench/gpu_check.sh   # CPU dry run: same steps, tiny sizes
#
# Environment: GPU_CHECK_BUDGET (seconds for the whole script, default 360), GPU_CHECK_PYTHON (default python3),
# GPU_CHECK_DATA (default .gpucheck/data, else ../shared/data), GPU_CHECK_WHEELS (default .gpucheck/wheels),
# GPU_CHECK_FORCE_WHEELS=1 (install the wheels even where pydantic imports), GPU_CHECK_STEPS (default 200),
# GPU_CHECK_TRAIN_EXTRA (more arguments for the main run, e.g. "--raw-steps 0" or "--no-compile").
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2

# --- prepare (on the development machine, not on the device) ------------------------------------------------
if [[ "${1:-}" == "prepare" ]]; then
    set -e
    SHARED="${GPU_CHECK_SHARED:-$REPO/../shared/data}"
    PIP="${GPU_CHECK_PIP:-python3 -m pip}"
    mkdir -p .git/info
    grep -qx '/.gpucheck/' .git/info/exclude 2>/dev/null || echo '/.gpucheck/' >>.git/info/exclude
    rm -rf .gpucheck && mkdir -p .gpucheck/wheels .gpucheck/data/english-text/gutenberg \
        .gpucheck/data/english-text/wikitext-2 .gpucheck/data/tokenizers/gpt2/hf-format
    # The device image has torch, transformers, tokenizers, pyarrow, numpy, safetensors, pyyaml; not pydantic.
    # Python there is 3.12, so pydantic-core's cp312 wheel (pins match this venv's pydantic 2.14.4).
    $PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .gpucheck/wheels pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
        typing-inspection==0.4.5 typing-extensions==4.16.0
    cp "$SHARED"/english-text/gutenberg/pg1342-pride-and-prejudice.txt "$SHARED"/english-text/gutenberg/pg2701-moby-dick.txt \
        "$SHARED"/english-text/gutenberg/pg3261-news-from-nowhere.txt .gpucheck/data/english-text/gutenberg/
    cp "$SHARED"/english-text/wikitext-2/valid.txt .gpucheck/data/english-text/wikitext-2/
    cp "$SHARED"/tokenizers/gpt2/hf-format/* .gpucheck/data/tokenizers/gpt2/hf-format/
    ls -l .gpucheck/wheels
    du -sh .gpucheck
    git check-ignore -q .gpucheck/data || { echo "prepare: .gpucheck is not ignored by git" >&2; exit 1; }
    echo "prepared: carry [\".gpucheck\"]"
    exit 0
fi

# --- the check ------------------------------------------------------------------------------------------------
if [[ -z "${OUT:-}" ]]; then
    echo "gpu_check: OUT is not set (the folder whose files come back)" >&2
    exit 2
fi
mkdir -p "$OUT" || exit 2
LOG="$OUT/gpu_check.log"
exec > >(tee -a "$LOG") 2>&1
TEE_PID=$!
# On exit: the scratch folder goes, and the log is complete before the call returns.
trap '[[ -n "${WORK:-}" ]] && rm -rf "$WORK"; exec 1>&- 2>&-; wait "$TEE_PID" 2>/dev/null' EXIT

BUDGET="${GPU_CHECK_BUDGET:-360}"
PY="${GPU_CHECK_PYTHON:-python3}"
CPU="${GPU_CHECK_CPU:-0}"
STEPS="${GPU_CHECK_STEPS:-200}"
WORK="$(mktemp -d /tmp/gpucheck-work.XXXXXX)"
SITE="$WORK/site"
STATUS=()

say() { echo "[gpu_check $(printf '%4d' "$SECONDS")s] $*"; }
die() { say "FAILED: $*"; echo "GPU_CHECK: FAILED ($*)"; exit 1; }
left() { echo $((BUDGET - SECONDS)); }
# run_limited NAME SECONDS COMMAND...: the command under `timeout`; its exit code; a timeout is said plainly
run_limited() {
    local name="$1" limit="$2"; shift 2
    say "$name: start (limit ${limit}s): $*"
    timeout -k 15 "$limit" "$@"
    local rc=$?
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then say "$name: TIMED OUT after ${limit}s"; else say "$name: exit code $rc"; fi
    STATUS+=("$name=$rc")
    return $rc
}

if [[ "$CPU" == "1" ]]; then
    DEVICE=cpu
    TRAIN_ARGS=(--device cpu --preset tiny --steps 6 --block-size 64 --batch-size 4 --raw-steps 3 --text-chars 300000)
    EAGER_ARGS=(--device cpu --preset tiny --steps 4 --block-size 64 --batch-size 4 --raw-steps 0 --text-chars 300000 --no-compile)
    SANITY_ARGS=(--device cpu --preset tiny --batch-size 2 --block-size 64)
    LAUNCH_ARGS=(--device cpu --nproc 1 --steps 4 --batch-size 4 --block-size 64)
else
    DEVICE=cuda
    TRAIN_ARGS=(--device cuda --preset small --steps "$STEPS" --block-size 1024 --batch-size 32 --raw-steps 50)
    EAGER_ARGS=(--device cuda --preset small --steps 60 --block-size 1024 --batch-size 32 --raw-steps 0 --no-compile)
    SANITY_ARGS=(--device cuda --preset small --batch-size 32 --block-size 1024)
    LAUNCH_ARGS=(--device cuda --nproc 1 --steps 20 --batch-size 16 --block-size 256)
fi

# GPU_CHECK_TRAIN_EXTRA: more arguments for the main benchmark run (word-split), e.g. "--raw-steps 0"
read -r -a TRAIN_EXTRA <<<"${GPU_CHECK_TRAIN_EXTRA:-}"
TRAIN_ARGS+=("${TRAIN_EXTRA[@]}")

say "repo $REPO, OUT $OUT, work $WORK, budget ${BUDGET}s, device $DEVICE, python $(command -v "$PY" || echo "$PY: not found")"
command -v "$PY" >/dev/null || die "no $PY on PATH (set GPU_CHECK_PYTHON)"

# 1. environment
say "== 1. environment"
if command -v nvidia-smi >/dev/null; then
    timeout 30 nvidia-smi || say "nvidia-smi failed (exit $?)"
    timeout 30 nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,clocks.max.sm,power.limit,temperature.gpu --format=csv
elif [[ "$DEVICE" == cuda ]]; then
    die "nvidia-smi not found on a CUDA run"
fi
uname -a; nproc; free -g 2>/dev/null | head -2; df -h /tmp | tail -1
timeout 120 "$PY" - "$DEVICE" <<'EOF' || die "python/torch environment check"
import platform, sys
import torch
print(f"python {platform.python_version()} at {sys.executable}")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
      f"cuda available {torch.cuda.is_available()}, devices {torch.cuda.device_count()}")
if sys.argv[1] == "cuda":
    if not torch.cuda.is_available():
        sys.exit("torch sees no CUDA device")
    p = torch.cuda.get_device_properties(0)
    print(f"gpu {p.name}, capability {p.major}.{p.minor}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs, "
          f"bf16 {torch.cuda.is_bf16_supported()}")
    x = torch.ones(4, device="cuda"); torch.cuda.synchronize(); assert float(x.sum()) == 4.0
EOF

# 2. Python packages: the image's, plus the carried wheels where it lacks one (pydantic)
say "== 2. packages"
export PYTHONPATH="$REPO"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=true
WHEELS="${GPU_CHECK_WHEELS:-$REPO/.gpucheck/wheels}"
if [[ "${GPU_CHECK_FORCE_WHEELS:-0}" == "1" ]] || ! "$PY" -c 'import pydantic, sys; sys.exit(int(pydantic.VERSION.split(".")[0]) < 2)' 2>/dev/null; then
    ls "$WHEELS"/*.whl >/dev/null 2>&1 || die "pydantic>=2 is missing and no wheels in $WHEELS (run 'bash bench/gpu_check.sh prepare' here and carry .gpucheck)"
    WHEEL_FILES=("$WHEELS"/*.whl)
    # typing_extensions only where the image's is older than pydantic's minimum: a newer one stays in charge
    if "$PY" -c 'import importlib.metadata as m, sys; from packaging.version import Version as V
sys.exit(V(m.version("typing_extensions")) < V("4.16.0"))' 2>/dev/null; then
        WHEEL_FILES=(); for w in "$WHEELS"/*.whl; do [[ "$(basename "$w")" == typing_extensions-* ]] || WHEEL_FILES+=("$w"); done
    fi
    say "installing ${WHEEL_FILES[*]##*/} into $SITE"
    timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
        --target "$SITE" "${WHEEL_FILES[@]}" || die "pip install of the carried wheels"
    export PYTHONPATH="$SITE:$REPO"
fi
timeout 180 "$PY" - <<'EOF' || die "importing the project (PYTHONPATH=$PYTHONPATH)"
import importlib
for name in ("training.pretrain", "training.launch", "training.model", "training.data", "corpus.shards", "tokenizer.encode"):
    importlib.import_module(name)
versions = {}
for name in ("torch", "transformers", "tokenizers", "pyarrow", "numpy", "pydantic", "safetensors", "triton"):
    try:
        module = importlib.import_module(name)
        versions[name] = f"{module.__version__} ({module.__file__.rsplit('/', 2)[0]})"
    except ImportError as exc:
        versions[name] = f"MISSING: {exc}"
for name, version in versions.items():
    print(f"  {name:13s}{version}")
missing = [n for n, v in versions.items() if v.startswith("MISSING") and n != "triton"]
if missing:
    raise SystemExit(f"missing: {missing}")
print("project imports: ok")
EOF

# 3. the text for the token shards (gpu_train.py writes them from it with GPT-2's tokenizer)
DATA="${GPU_CHECK_DATA:-}"
if [[ -z "$DATA" ]]; then
    if [[ -d "$REPO/.gpucheck/data" ]]; then DATA="$REPO/.gpucheck/data"; else DATA="$REPO/../shared/data"; fi
fi
for f in english-text/gutenberg/pg1342-pride-and-prejudice.txt english-text/gutenberg/pg2701-moby-dick.txt \
    english-text/gutenberg/pg3261-news-from-nowhere.txt english-text/wikitext-2/valid.txt tokenizers/gpt2/hf-format/tokenizer.json; do
    [[ -s "$DATA/$f" ]] || die "missing $DATA/$f (run 'bash bench/gpu_check.sh prepare' here and carry .gpucheck)"
done
say "data: $DATA"

# 4. sanity checks (a failure here is reported; the benchmark still runs)
say "== 3. sanity: bf16 matmul, SDPA kernel, autocast, fused AdamW"
run_limited sanity 90 "$PY" bench/gpu_sanity.py "${SANITY_ARGS[@]}" --json "$OUT/sanity.json" || say "sanity: some check FAILED (see above); going on"

# 5. the benchmark, compiled
say "== 4. benchmark (compile on)"
MAIN_LIMIT=$(( $(left) - 40 )); (( MAIN_LIMIT > 300 )) && MAIN_LIMIT=300
(( MAIN_LIMIT < 60 )) && die "only $(left)s left for the benchmark"
RAW_BUDGET=$(( MAIN_LIMIT - 100 ))  # gpu_train skips its raw loop (a second compile) when past this
(( RAW_BUDGET < 1 )) && RAW_BUDGET=1
run_limited gpu_train "$MAIN_LIMIT" env TORCH_LOGS=recompiles "$PY" bench/gpu_train.py "${TRAIN_ARGS[@]}" --data "$DATA" --work "$WORK/train" \
    --raw-budget "$RAW_BUDGET" --json "$OUT/gpu_train.json"
MAIN_RC=$?
if [[ ! -s "$OUT/gpu_train.json" ]]; then
    say "the compiled benchmark gave no figures (exit $MAIN_RC)"
    LIMIT=$(( $(left) - 10 )); (( LIMIT > 150 )) && LIMIT=150
    if (( LIMIT >= 60 )); then
        say "== 4b. fallback: the benchmark without torch.compile"
        run_limited gpu_train_eager "$LIMIT" "$PY" bench/gpu_train.py "${EAGER_ARGS[@]}" --data "$DATA" \
            --work "$WORK/eager" --json "$OUT/gpu_train_eager.json"
    fi
fi

# 6. torchrun + NCCL + DDP, one rank (only with time to spare)
TOKENS="$WORK/train/tokens"; [[ -d "$TOKENS/train" ]] || TOKENS="$WORK/eager/tokens"
if [[ -d "$TOKENS/train" ]] && (( $(left) >= 75 )); then
    say "== 5. training.launch: torchrun, one rank, DDP ($([[ $DEVICE == cuda ]] && echo NCCL || echo gloo))"
    run_limited launch 60 "$PY" bench/gpu_launch_check.py "${LAUNCH_ARGS[@]}" --tokens "$TOKENS" \
        --tokenizer "$DATA/tokenizers/gpt2/hf-format" --out "$WORK/launch" --json "$OUT/launch_check.json"
else
    say "== 5. launch check skipped ($(left)s left, or no token shards)"
fi

# 7. without compile, for comparison (only with time to spare)
if [[ -s "$OUT/gpu_train.json" && ! -s "$OUT/gpu_train_eager.json" ]] && (( $(left) >= 100 )); then
    say "== 6. benchmark without torch.compile (comparison)"
    run_limited gpu_train_eager $(( $(left) - 15 > 150 ? 150 : $(left) - 15 )) "$PY" bench/gpu_train.py "${EAGER_ARGS[@]}" \
        --data "$DATA" --work "$WORK/eager" --json "$OUT/gpu_train_eager.json"
else
    say "== 6. eager comparison skipped ($(left)s left)"
fi

# 8. summary
say "== summary"
rm -rf "$WORK/train/model" "$WORK/eager/model" "$WORK/launch"
"$PY" - "$OUT" "${STATUS[*]}" <<'EOF'
import json, sys
from pathlib import Path
out, status = Path(sys.argv[1]), sys.argv[2]
def load(name):
    p = out / name
    return json.loads(p.read_text()) if p.is_file() and p.stat().st_size else None
main, eager, sanity, launch = (load(n) for n in ("gpu_train.json", "gpu_train_eager.json", "sanity.json", "launch_check.json"))
summary = {"steps_exit_codes": status, "main": None, "eager": None, "sanity_ok": None, "launch_ok": None}
def fmt(x, f):
    return "-" if x is None else format(x, f)
rows = []
measured_peak = None
if sanity:
    summary["sanity_ok"] = sanity["ok"]
    checks = sanity["checks"]
    measured_peak = (checks.get("matmul") or {}).get("tflops")
    print(f"sanity: {'ok' if sanity['ok'] else 'FAILED'}; bf16 matmul {fmt(measured_peak, '.0f')} TFLOP/s; "
          f"SDPA kernel {checks.get('sdpa', {}).get('kernel')} {checks.get('sdpa', {}).get('ops')}; "
          f"autocast logits {checks.get('bf16', {}).get('logits_dtype')}; fused AdamW {checks.get('adamw', {}).get('fused')}")
    for name, c in checks.items():
        if not c["ok"]:
            print(f"  FAILED {name}: {c.get('error') or {k: v for k, v in c.items() if k != 'traceback'}}")
for label, fig in (("main", main), ("eager", eager)):
    if not fig:
        continue
    tps, mfu, wait = fig["tokens_per_second"], fig["mfu"], fig["data_wait_fraction"]
    vs_measured = tps * fig["flops_per_token"] / (measured_peak * 1e12) if measured_peak and fig.get("flops_per_token") else None
    summary[label] = {
        "tokens_per_second": tps, "mfu": mfu, "mfu_vs_measured_matmul": vs_measured, "data_wait_fraction": wait,
        "raw_tokens_per_second": fig.get("raw_tokens_per_second"), "ours_over_raw": fig.get("ours_over_raw"),
        "compile": fig["compile"], "steps": fig["steps"], "pretrain_seconds": fig["pretrain_seconds"],
        "peak_memory_gib": fig.get("peak_memory_gib"), "device": fig["device"],
    }
    rows.append((label, fig["compile"], fig["steps"], tps, mfu, vs_measured, wait, fig.get("raw_tokens_per_second"),
                 fig.get("ours_over_raw")))
if rows:
    print(f"{'run':6s} {'compile':>7s} {'steps':>5s} {'tokens/s':>10s} {'MFU(989T)':>10s} {'MFU(meas.)':>10s} {'data wait':>10s} "
          f"{'raw tok/s':>10s} {'ours/raw':>8s}")
    for label, comp, steps, tps, mfu, vsm, wait, raw, ratio in rows:
        print(f"{label:6s} {str(comp):>7s} {steps:>5d} {fmt(tps, ',.0f'):>10s} {fmt(mfu, '.1%'):>10s} {fmt(vsm, '.1%'):>10s} "
              f"{fmt(wait, '.3%'):>10s} {fmt(raw, ',.0f'):>10s} {fmt(ratio, '.3f'):>8s}")
if not main:  # the compiled run was cut off or failed: its rates so far, from its log lines
    import re, statistics
    text = (out / "gpu_check.log").read_text(errors="replace")
    section = text.split("== 4. benchmark", 1)[-1].split("gpu_train: exit code", 1)[0].split("gpu_train: TIMED OUT", 1)[0]
    found = re.findall(r"\] step (\d+)/(\d+) \| loss [\d.]+ \| lr \S+ \| ([\d,]+) tok/s(?: \| mfu ([\d.]+)%)?", section)
    if found:
        rates = [float(r.replace(",", "")) for _, _, r, _ in found]
        mfus = [float(m) / 100 for *_, m in found if m]
        partial = {"logged_steps": [int(s) for s, *_ in found], "median_tokens_per_second": statistics.median(rates),
                   "median_mfu": statistics.median(mfus) if mfus else None}
        summary["main_partial"] = partial
        print(f"main run cut off or failed; from its log, up to step {partial['logged_steps'][-1]}/{found[-1][1]}: "
              f"median {partial['median_tokens_per_second']:,.0f} tok/s, MFU {fmt(partial['median_mfu'], '.1%')}")
primary = main or eager
if primary:
    tps, mfu, wait = primary["tokens_per_second"], primary["mfu"], primary["data_wait_fraction"]
    print(f"targets (issue 7, {'main' if main else 'eager fallback'} run): tokens/s >= 400,000: {'MET' if tps >= 4e5 else 'not met'}; "
          f"MFU >= 40%: {'-' if mfu is None else ('MET' if mfu >= 0.40 else 'not met')}; "
          f"data wait <= 2%: {'MET' if wait <= 0.02 else 'not met'}")
if launch:
    summary["launch_ok"] = launch["ok"]
    print(f"launch (torchrun, {launch['nproc']} rank): {'ok' if launch['ok'] else 'FAILED'} "
          f"{ {k: v for k, v in launch.items() if k not in ('ok', 'nproc')} }")
print(f"exit codes: {status}")
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
EOF
rm -rf "$WORK"
if [[ -s "$OUT/gpu_train.json" ]]; then
    echo "GPU_CHECK: OK (figures in $OUT/gpu_train.json; $SECONDS s)"
    exit 0
fi
echo "GPU_CHECK: FAILED (no compiled figures; see $OUT/gpu_check.log; $SECONDS s)"
exit 1
