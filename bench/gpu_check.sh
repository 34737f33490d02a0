#!/usr/bin/env bash
# GPU verification (issue 18): one prepared script that proves every CUDA and TensorRT path of this
# project on a lent GPU machine in at most 8 minutes, and a --dry-run that checks the script here,
# without a GPU and without training anything.
#
#   bash bench/gpu_check.sh             # on the GPU machine (a copy of the working tree, no .venv, no network)
#   bash bench/gpu_check.sh --dry-run   # anywhere: bash syntax, every command, flag and spec key; trains nothing
#
# It installs nothing: it runs the device's own python3 on this tree (PYTHONPATH=<repo root>,
# `python3 -m model.cli` / `python3 -m automl.cli`, or `rtdetr` / `automl` when both on PATH are this
# project's console scripts).
# Sections, in order, each under `timeout` with its own budget (time a section leaves unused goes to
# the next ones; GPU_CHECK_TOTAL_S caps the whole). A failing section is recorded FAILED with the
# tail of its log and the next one runs; a skipped one says why.
#
#   1 environment           nvidia-smi -L, python / torch / CUDA / cuDNN / NCCL versions, a CUDA matmul,
#                           which modules import (tensorrt, onnxruntime providers, optuna, mlflow, ...)
#   2 gpu_tests             python3 -m pytest -m gpu -q tests (pyproject.toml's `gpu` marker)
#   3 train_precisions      rtdetr dataset synth (200/50/50 images, 128 px), then 2-epoch trainings of
#                           configs/demo.yaml in train.precision fp32, bf16 and fp16, side by side on GPU 0
#   4 nccl                  torchrun: NCCL all_reduce, the project's collectives and one DDP step of the demo
#                           network (1 process, or 2 with 2+ GPUs); with 2+ GPUs also a real 2-process DDP
#                           training (train.num_gpus=2)
#   5 automl_gpu_placement  automl run, 3 trials x 2 epochs, train.num_gpus=1, --no-track: each trial's state
#                           and the GPU it got (CUDA_VISIBLE_DEVICES of its process; summary.json has none)
#   6 tensorrt              rtdetr export of the fp32 run's best checkpoint, gen_trt_engine FP16 and INT8
#                           (entropy calibration on the synthetic train images), rtdetr evaluate of the
#                           checkpoint and of each engine (evaluate.trt_engine): test_mAP50 of each
#   7 speed                 R18 at 640: train step batch 16 (bf16 / fp16 AMP, fp32), eager inference batch 1
#                           (fp32 / fp16 / bf16), ONNX Runtime CUDA batch 1, TensorRT FP16 batch 1 (built by
#                           rtdetr gen_trt_engine) beside the paper's 217 FPS on a T4
#
# Outputs in $OUT (default ./gpu_check_out): gpu_check.json (one entry per section: state
# PASSED|FAILED|SKIPPED (DRY_RUN in a dry run), seconds, reason, figures; rewritten after every section,
# so a run cut short still leaves its results), gpu_check.md (the same as tables, with the speed
# table), logs/NN_<section>.log (and one log per long command), artifacts/ (status.json and
# summary.json copies). Exit status: 0 when no section FAILED, 1 otherwise, 2 for bad usage.
#
# Environment:
#   OUT                        results folder (default ./gpu_check_out)
#   GPU_CHECK_PYTHON           interpreter (default python3; in a dry run .venv/bin/python when python3 has no torch)
#   GPU_CHECK_TOTAL_S          limit for all sections together (default 450 s: with kills and reports under 8 min)
#   GPU_CHECK_SECTIONS         run only these sections, e.g. "3 6" (the others are SKIPPED; 6 needs 3's checkpoint)
#   GPU_CHECK_EXTRA_OVERRIDES  key=value overrides added to every spec the script uses (space-separated)
#   GPU_CHECK_FROM_SOURCE=1    always python -m model.cli / automl.cli, even when rtdetr and automl are on PATH
#   GPU_CHECK_KEEP_WORK=1      keep the scratch folder (data, checkpoints, engines) instead of deleting it

set -o pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
ROOT="$(cd "$(dirname "$SELF")/.." && pwd)"

NAMES=(- environment gpu_tests train_precisions nccl automl_gpu_placement tensorrt speed)
# seconds per section, 450 in all; the TensorRT builds (sections 2, 6, 7) take most of it. A section may
# run until the sum of the budgets up to it, so time an earlier section leaves goes to the later ones.
BUDGETS=(0 25 70 55 30 80 95 95)
DRY_SECTION_TIMEOUT=60
SKIP_RC=3

# ------------------------------------------------------------------------------------------------
# helpers shared by the main process and the section processes
# ------------------------------------------------------------------------------------------------

ms_now() { echo $(($(date +%s%N) / 1000000)); }

commands_setup() { # RTDETR and AUTOML: the project's two CLIs, as arrays
  if [ "${GC_USE_PATH:-0}" = 1 ]; then
    RTDETR=(rtdetr)
    AUTOML=(automl)
  else
    RTDETR=("$GC_PY" -m model.cli)
    AUTOML=("$GC_PY" -m automl.cli)
  fi
  read -r -a EXTRA <<<"${GPU_CHECK_EXTRA_OVERRIDES:-}"
}

gc() { "$GC_PY" "$GC_PYDIR/gc.py" "$@"; }

reason() { echo "$*" >>"$GC_FIG/$GC_SECTION.reason"; }

skip() { # skip WHY: the section ends SKIPPED with this reason
  reason "$*"
  echo "SKIPPED: $*"
  exit "$SKIP_RC"
}

fail() { # fail WHY: the section ends FAILED with this reason
  reason "$*"
  echo "FAILED: $*"
  exit 1
}

fig() { gc fig "$GC_FIG/$GC_SECTION.json" "$@"; }

left() { # seconds left before this section's deadline, less a margin
  local left=$((GC_DEADLINE - $(date +%s) - ${1:-5}))
  [ "$left" -lt 1 ] && left=1
  echo "$left"
}

quote() { printf '%q ' "$@"; }

# plan_cmd LOG CMD...: the command as the plan shows it (and the figures' "commands" list)
plan_cmd() {
  local log=$1
  shift
  local text
  text="$(quote "$@")"
  echo "${text% }${log:+  > ${log#"$GC_OUT"/}}" >>"$GC_FIG/$GC_SECTION.plan"
  echo "+ ${text% }"
}

# step SECONDS LOG CMD...: on the GPU, run CMD under timeout (at most what the section has left),
# output to LOG (empty: the section log); in a dry run only show it. Returns CMD's exit status.
step() {
  local want=$1 log=$2
  shift 2
  plan_cmd "$log" "$@"
  [ "$GC_DRY" = 1 ] && return 0
  local t
  t=$(left 5)
  [ "$want" -lt "$t" ] && t=$want
  echo "  (timeout ${t}s${log:+, log ${log#"$GC_OUT"/}})"
  if [ -n "$log" ]; then
    timeout -k 10 "$t" "$@" >"$log" 2>&1
  else
    timeout -k 10 "$t" "$@"
  fi
}

# check LABEL CMD...: dry run only: run CMD now (output to the section log); a failure is remembered
# with the last lines of its output and fails the section at its end.
CHECK_FAILED=()
check() {
  local label=$1
  shift
  [ "$GC_DRY" = 1 ] || return 0
  local out rc
  out="$("$@" 2>&1)"
  rc=$?
  if [ "$rc" = 0 ]; then
    echo "check ok: $label"
    [ -n "$out" ] && echo "$out" | tail -n 12 | sed 's/^/  | /'
    echo "ok: $label" >>"$GC_FIG/$GC_SECTION.checks"
  else
    echo "check FAILED (exit $rc): $label: $(quote "$@")"
    echo "$out" | tail -n 25
    CHECK_FAILED+=("$label (exit $rc): $(echo "$out" | grep -v '^\s*$' | tail -n 3 | tr '\n' ' ')")
    echo "FAILED: $label" >>"$GC_FIG/$GC_SECTION.checks"
  fi
  return 0
}

finish_checks() { # the end of a dry-run section: FAILED when a check failed
  [ "$GC_DRY" = 1 ] || return 0
  if [ "${#CHECK_FAILED[@]}" -gt 0 ]; then
    local item
    for item in "${CHECK_FAILED[@]}"; do reason "check failed: $item"; done
    echo "FAILED: ${#CHECK_FAILED[@]} check(s) failed"
    exit 1
  fi
  exit 0
}

# have WHAT: cuda | tensorrt | pytest | ort_cuda (cached in $GC_WORK/have)
have() {
  local what=$1 cached
  cached=$(grep -s "^$what=" "$GC_WORK/have" | tail -n 1 | cut -d= -f2)
  if [ -z "$cached" ]; then
    local code
    case $what in
      cuda) code='import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' ;;
      tensorrt) code='import tensorrt' ;;
      pytest) code='import pytest' ;;
      ort_cuda) code='import onnxruntime as o, sys; sys.exit(0 if "CUDAExecutionProvider" in o.get_available_providers() else 1)' ;;
      *) return 1 ;;
    esac
    if "$GC_PY" -c "$code" >/dev/null 2>&1; then cached=1; else cached=0; fi
    echo "$what=$cached" >>"$GC_WORK/have"
  fi
  [ "$cached" = 1 ]
}

import_error() { # import_error MODULE: why it does not import (one line)
  "$GC_PY" -c "import $1" 2>&1 | grep -v '^\s*$' | tail -n 1
}

gpu_count() { # visible GPUs: CUDA_VISIBLE_DEVICES when set, else nvidia-smi -L, else torch
  if [ -n "${CUDA_VISIBLE_DEVICES+x}" ]; then
    echo "${CUDA_VISIBLE_DEVICES}" | tr ',' '\n' | grep -c '[0-9]'
  elif command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L 2>/dev/null | grep -c '^GPU '
  else
    "$GC_PY" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0
  fi
}

# The spec overrides. Every training and deploy command of sections 3-7 is built here, so the dry
# run validates exactly the keys the GPU run passes.
data_overrides() { # DATA_OV for the synthetic dataset in $GC_DATA
  local d=$GC_DATA
  DATA_OV=(
    "dataset.train_data_sources[0].image_dir=$d/train/images.tar.gz"
    "dataset.train_data_sources[0].json_file=$d/train/annotations.json"
    "dataset.val_data_sources.image_dir=$d/val/images.tar.gz"
    "dataset.val_data_sources.json_file=$d/val/annotations.json"
    "dataset.test_data_sources.image_dir=$d/test/images.tar.gz"
    "dataset.test_data_sources.json_file=$d/test/annotations.json"
    "dataset.infer_data_sources.image_dir=[$d/test/images.tar.gz]"
    "dataset.infer_data_sources.classmap=$d/label_map.txt"
  )
}

train_overrides() { # train_overrides RESULTS_DIR PRECISION NUM_GPUS -> TRAIN_OV
  data_overrides
  local gpu_ids="[0]"
  [ "$3" = 2 ] && gpu_ids="[0,1]"
  TRAIN_OV=(
    "${DATA_OV[@]}"
    "results_dir=$1"
    train.num_epochs=2
    "train.precision=$2"
    "train.num_gpus=$3"
    "train.gpu_ids=$gpu_ids"
    dataset.workers=2
    "${EXTRA[@]}"
  )
}

SYNTH_SIZES=(--train 200 --val 50 --test 50)
ensure_data() { # the synthetic dataset of section 3 (tiny in a dry run: the same flags, fewer images)
  [ -f "$GC_DATA/label_map.txt" ] && return 0
  local cmd=("${RTDETR[@]}" dataset synth --out "$GC_DATA" "${SYNTH_SIZES[@]}" --size 128 --classes 3 --seed 0)
  plan_cmd "$GC_LOGS/dataset_synth.log" "${cmd[@]}"
  if [ "$GC_DRY" = 1 ]; then
    # a dry run makes the dataset too, with the same flags and a few images: the validate checks read its files
    cmd=("${RTDETR[@]}" dataset synth --out "$GC_DATA" --train 8 --val 4 --test 4 --size 128 --classes 3 --seed 0)
    echo "  dry run: $(quote "${cmd[@]}")"
  fi
  timeout -k 5 "$(left 5)" "${cmd[@]}" >"$GC_LOGS/dataset_synth.log" 2>&1 || {
    tail -n 20 "$GC_LOGS/dataset_synth.log"
    return 1
  }
}

validate_cmd() { # validate_cmd ACTION SPEC [--no-path-check] KEY=VALUE...: rtdetr validate of one command's spec
  local action=$1 spec=$2
  shift 2
  "${RTDETR[@]}" validate --action "$action" -e "$spec" "$@" >/dev/null
}

status_get() { gc status "$1" "$2" 2>/dev/null; }

copy_artifact() { # copy_artifact FILE NAME
  [ -f "$1" ] && mkdir -p "$GC_OUT/artifacts" && cp "$1" "$GC_OUT/artifacts/$2"
}

# ------------------------------------------------------------------------------------------------
# the sections (each runs in its own process: bash gpu_check.sh --section N)
# ------------------------------------------------------------------------------------------------

section_1() { # environment
  if [ "$GC_DRY" = 1 ]; then
    check "bash -n bench/gpu_check.sh" bash -n "$SELF"
    if command -v shellcheck >/dev/null 2>&1; then
      check "shellcheck bench/gpu_check.sh" shellcheck -S warning "$SELF"
    else
      echo "shellcheck is not installed: not run"
    fi
    local f
    for f in model/cli.py automl/cli.py configs/demo.yaml configs/rtdetr_r18.yaml \
      bench/model_speed.py bench/deploy_speed.py pyproject.toml; do
      check "file $f" test -f "$ROOT/$f"
    done
    check "pyproject.toml defines the gpu marker" grep -q '"gpu: ' "$ROOT/pyproject.toml"
    check "$(quote "${RTDETR[@]}")--help" "${RTDETR[@]}" --help
    check "$(quote "${AUTOML[@]}")run --help" "${AUTOML[@]}" run --help
    check "helper scripts compile" "$GC_PY" -m py_compile "$GC_PYDIR/gc.py" "$GC_PYDIR/env_probe.py" \
      "$GC_PYDIR/nccl_check.py" "$GC_PYDIR/speed.py"
  fi
  step 60 "" nvidia-smi -L
  [ "$GC_DRY" = 1 ] && plan_cmd "" nvidia-smi --query-gpu=index,name,driver_version,memory.total,mig.mode.current --format=csv
  local probe=("$GC_PY" "$GC_PYDIR/env_probe.py" "$GC_FIG/1.json" "$GC_FIG/1.reason" "$GC_WORK/have")
  [ "$GC_DRY" = 1 ] && probe+=(--dry-run)
  plan_cmd "" "${probe[@]}"
  echo "commands: rtdetr = $(quote "${RTDETR[@]}"), automl = $(quote "${AUTOML[@]}")"
  fig rtdetr="$(quote "${RTDETR[@]}")" automl="$(quote "${AUTOML[@]}")" python="$GC_PY"
  if [ "$GC_DRY" = 1 ]; then
    # the probe itself runs here too (no GPU expected): it is the same code the GPU run uses
    check "environment probe runs" "${probe[@]}"
    finish_checks
  fi
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=index,name,driver_version,memory.total,mig.mode.current --format=csv
  else
    echo "nvidia-smi: not found"
  fi
  "${probe[@]}"
}

section_2() { # the gpu-marked tests
  local cmd=("$GC_PY" -m pytest -m gpu -q tests -p no:cacheprovider --continue-on-collection-errors
    --basetemp "$GC_WORK/pytest")
  if [ "$GC_DRY" = 1 ]; then
    plan_cmd "$GC_LOGS/02_pytest.log" "${cmd[@]}"
    if have pytest; then
      # collecting one module is enough to show the marker selects tests (all of tests/ is slow here)
      # shellcheck disable=SC2016  # $0 is expanded by the inner bash
      check "pytest -m gpu selects the TensorRT tests" bash -c '"$0" -m pytest -m gpu --collect-only -q \
        -p no:cacheprovider tests/model/actions/test_gen_trt_engine.py | grep -q "::test_"' "$GC_PY"
    else
      echo "pytest does not import here: on the GPU machine this section would be SKIPPED"
      reason "pytest does not import here ($(import_error pytest)); the GPU run would skip this section"
    fi
    finish_checks
  fi
  have pytest || skip "pytest does not import ($(import_error pytest)): the gpu-marked tests were not run"
  step 600 "$GC_LOGS/02_pytest.log" "${cmd[@]}"
  local rc=$?
  tail -n 30 "$GC_LOGS/02_pytest.log"
  gc pytest "$GC_LOGS/02_pytest.log" "$rc" "$GC_FIG/2.json" "$GC_FIG/2.reason"
}

section_3() { # synthetic data, then fp32 / bf16 / fp16 trainings
  [ "$GC_DRY" = 1 ] || have cuda || skip "torch.cuda.is_available() is False: no GPU training"
  ensure_data || fail "rtdetr dataset synth failed (log: logs/dataset_synth.log)"
  local p
  for p in fp32 bf16 fp16; do
    train_overrides "$GC_WORK/train_$p" "$p" 1
    check "rtdetr validate: train.precision=$p run" validate_cmd train "$ROOT/configs/demo.yaml" "${TRAIN_OV[@]}"
  done
  # how fp16 training is scaled (the trainer's own code, read rather than assumed)
  local scaler="no GradScaler: fp16 runs under torch.autocast(float16) and loss.backward() unscaled (model/engine/trainer.py)"
  grep -q "LossScaler" "$ROOT/model/engine/trainer.py" && grep -q "GradScaler" "$ROOT/model/engine/loss_scaling.py" \
    && scaler="the trainer scales the fp16 loss with torch GradScaler (model/engine/loss_scaling.py)"
  fig fp16_loss_scaling="$scaler"
  if [ "$GC_DRY" = 1 ]; then
    for p in fp32 bf16 fp16; do
      train_overrides "$GC_WORK/train_$p" "$p" 1
      step 0 "$GC_LOGS/03_train_$p.log" "${RTDETR[@]}" train -e "$ROOT/configs/demo.yaml" "${TRAIN_OV[@]}"
    done
    finish_checks
  fi
  # the three runs side by side on the GPU (each under its own timeout), then their status.json
  local pids=() rcs=()
  for p in fp32 bf16 fp16; do
    train_overrides "$GC_WORK/train_$p" "$p" 1
    step 600 "$GC_LOGS/03_train_$p.log" "${RTDETR[@]}" train -e "$ROOT/configs/demo.yaml" "${TRAIN_OV[@]}" &
    pids+=($!)
  done
  local i
  for i in 0 1 2; do
    wait "${pids[$i]}"
    rcs+=($?)
  done
  local bad=0
  i=0
  for p in fp32 bf16 fp16; do
    local st="$GC_WORK/train_$p/train/status.json"
    copy_artifact "$st" "train_$p.status.json"
    gc figjson "$GC_FIG/3.json" "runs.$p" "$st" "exit=${rcs[$i]}" "log=logs/03_train_$p.log"
    local final
    final=$(status_get "$st" final)
    echo "train.precision=$p: exit ${rcs[$i]}, status ${final:-none}, best val_mAP50 $(status_get "$st" best_val_mAP50)"
    if [ "$final" = SUCCESS ]; then
      reason "$p: SUCCESS, best val_mAP50 $(status_get "$st" best_val_mAP50)"
    else
      bad=1
      reason "train.precision=$p: ${final:-no status.json} (exit ${rcs[$i]}): $(status_get "$st" message)"
      echo "--- tail of logs/03_train_$p.log"
      tail -n 15 "$GC_LOGS/03_train_$p.log"
    fi
    i=$((i + 1))
  done
  [ "$bad" = 0 ] || exit 1
}

section_4() { # NCCL
  local ngpu
  ngpu=$(gpu_count)
  local procs=1
  [ "${ngpu:-0}" -ge 2 ] && procs=2
  local run=("$GC_PY" -m torch.distributed.run --standalone --nnodes=1 "--nproc-per-node=$procs"
    "$GC_PYDIR/nccl_check.py" --out "$GC_WORK/nccl.json")
  train_overrides "$GC_WORK/ddp" fp32 2
  local ddp=("${RTDETR[@]}" train -e "$ROOT/configs/demo.yaml" "${TRAIN_OV[@]}")
  if [ "$GC_DRY" = 1 ]; then
    ensure_data || fail "rtdetr dataset synth failed"
    NCCL_DEBUG=INFO step 0 "$GC_LOGS/04_nccl_check.log" "${run[@]}"
    echo "with 2+ GPUs also:"
    step 0 "$GC_LOGS/04_ddp_train.log" "${ddp[@]}"
    check "rtdetr validate: the 2-process DDP run (train.num_gpus=2)" validate_cmd train "$ROOT/configs/demo.yaml" "${TRAIN_OV[@]}"
    # the same check script, on the CPU with gloo, one process under torchrun
    check "nccl_check.py under torchrun (gloo on the CPU)" "$GC_PY" -m torch.distributed.run --standalone \
      --nnodes=1 --nproc-per-node=1 "$GC_PYDIR/nccl_check.py" --check --out "$GC_WORK/nccl_check_cpu.json"
    finish_checks
  fi
  have cuda || skip "torch.cuda.is_available() is False: NCCL needs CUDA"
  fig visible_gpus="$ngpu" processes="$procs"
  NCCL_DEBUG=INFO step 120 "$GC_LOGS/04_nccl_check.log" "${run[@]}"
  local rc=$?
  grep -E "NCCL INFO (NCCL version|Init COMPLETE|comm )|nccl_check" "$GC_LOGS/04_nccl_check.log" | head -n 12
  gc figjson "$GC_FIG/4.json" check "$GC_WORK/nccl.json" "exit=$rc"
  if [ "$rc" != 0 ] || [ ! -f "$GC_WORK/nccl.json" ]; then
    tail -n 25 "$GC_LOGS/04_nccl_check.log"
    fail "the NCCL check under torchrun ($procs process(es)) exited $rc (logs/04_nccl_check.log)"
  fi
  if [ "$procs" -lt 2 ]; then
    reason "$ngpu GPU(s) visible: NCCL was initialised by 1 process under torchrun (all_reduce, the project's collectives, one DDP step); the 2-process DDP training needs 2+ GPUs and was not run"
    return 0
  fi
  ensure_data || fail "rtdetr dataset synth failed"
  local port
  port=$("$GC_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  MASTER_PORT=$port step 300 "$GC_LOGS/04_ddp_train.log" "${ddp[@]}"
  rc=$?
  local st="$GC_WORK/ddp/train/status.json"
  copy_artifact "$st" ddp_train.status.json
  gc figjson "$GC_FIG/4.json" ddp_train "$st" "exit=$rc" \
    "launched=$(grep -c 'with torchrun' "$GC_LOGS/04_ddp_train.log")" \
    "ranks_in_sync=$(grep -o 'parameters in sync across [0-9]* ranks' "$GC_LOGS/04_ddp_train.log" | head -n 1)"
  if [ "$(status_get "$st" final)" != SUCCESS ]; then
    tail -n 25 "$GC_LOGS/04_ddp_train.log"
    fail "2-process DDP training: $(status_get "$st" final) (exit $rc): $(status_get "$st" message)"
  fi
}

section_5() { # automl with GPU placement
  local sweep="$GC_WORK/automl/gpu_check"
  train_overrides "$GC_WORK/automl_base" fp32 1
  local argv=(run -e "$ROOT/configs/demo.yaml" "${TRAIN_OV[@]}" --trials 3 --max-epochs 2 --seed 0
    --results-dir "$GC_WORK/automl" --name gpu_check --no-track --no-pipeline)
  if [ "$GC_DRY" = 1 ]; then
    ensure_data || fail "rtdetr dataset synth failed"
    step 0 "$GC_LOGS/05_automl.log" "${AUTOML[@]}" "${argv[@]}"
    check "automl run accepts the flags" "$GC_PY" -c \
      'import sys; from automl.cli import build_parser; a = build_parser().parse_args(sys.argv[1:]); assert a.command == "run" and a.trials == 3 and a.no_track' \
      "${argv[@]}"
    check "automl validate: the sweep's base spec" "${AUTOML[@]}" validate -e "$ROOT/configs/demo.yaml" "${TRAIN_OV[@]}"
    finish_checks
  fi
  have cuda || skip "torch.cuda.is_available() is False: no GPU trials"
  ensure_data || fail "rtdetr dataset synth failed"
  # which GPU each trial process got: its CUDA_VISIBLE_DEVICES, read from /proc while the sweep runs
  "$GC_PY" "$GC_PYDIR/gc.py" watch "$sweep" "$GC_WORK/placement.json" "$GC_WORK/placement.stop" &
  local watcher=$!
  # SIGINT first: automl stops its trials on Ctrl-C (SIGTERM would leave them to the reaper)
  plan_cmd "$GC_LOGS/05_automl.log" "${AUTOML[@]}" "${argv[@]}"
  local t
  t=$(left 15)
  echo "  (timeout -s INT ${t}s, log logs/05_automl.log)"
  timeout -s INT -k 20 "$t" "${AUTOML[@]}" "${argv[@]}" >"$GC_LOGS/05_automl.log" 2>&1
  local rc=$?
  touch "$GC_WORK/placement.stop"
  wait "$watcher"
  copy_artifact "$sweep/summary.json" automl_summary.json
  tail -n 20 "$GC_LOGS/05_automl.log"
  gc sweep "$sweep" "$GC_WORK/placement.json" "$rc" "$GC_FIG/5.json" "$GC_FIG/5.reason"
}

section_6() { # TensorRT: export, FP16 and INT8 engines, evaluate each
  local dep="$GC_WORK/deploy" ckpt
  local spec="$ROOT/configs/demo.yaml"
  data_overrides
  if [ "$GC_DRY" = 1 ]; then
    ckpt="$GC_WORK/train_fp32/train/model_epoch_001.pth"
  else
    have tensorrt || skip "tensorrt does not import ($(import_error tensorrt)): no engine built or evaluated"
    have cuda || skip "torch.cuda.is_available() is False: TensorRT needs a GPU"
    ckpt=$(status_get "$GC_WORK/train_fp32/train/status.json" best_checkpoint)
    if [ -z "$ckpt" ] || [ ! -f "$ckpt" ]; then
      skip "section 3's fp32 training left no best checkpoint (train_fp32/train/status.json); nothing to export"
    fi
  fi
  local common=("${DATA_OV[@]}" "results_dir=$dep" "${EXTRA[@]}")
  local onnx="$dep/export/model.onnx"
  local export_ov=("${common[@]}" "export.checkpoint=$ckpt" "export.onnx_file=$onnx"
    export.input_width=128 export.input_height=128)
  local -A engine_ov
  local dt
  for dt in FP16 INT8; do
    local ov=("${common[@]}" "gen_trt_engine.onnx_file=$onnx" "gen_trt_engine.trt_engine=$dep/model_$dt.engine"
      "gen_trt_engine.results_dir=$dep/trt_$dt" "gen_trt_engine.tensorrt.data_type=$dt"
      gen_trt_engine.tensorrt.min_batch_size=1 gen_trt_engine.tensorrt.opt_batch_size=8
      gen_trt_engine.tensorrt.max_batch_size=8 "gen_trt_engine.timing_cache=$dep/timing.cache")
    if [ "$dt" = INT8 ]; then
      ov+=("gen_trt_engine.tensorrt.calibration.cal_image_dir=[$GC_DATA/train/images.tar.gz]"
        gen_trt_engine.tensorrt.calibration.cal_batch_size=8 gen_trt_engine.tensorrt.calibration.cal_batches=10
        "gen_trt_engine.tensorrt.calibration.cal_cache_file=$dep/int8_calibration.cache")
    fi
    engine_ov[$dt]="$(quote "${ov[@]}")"
  done
  local eval_pt=("${common[@]}" "evaluate.checkpoint=$ckpt" "evaluate.results_dir=$dep/eval_pytorch")
  if [ "$GC_DRY" = 1 ]; then
    ensure_data || fail "rtdetr dataset synth failed"
    check "rtdetr validate --action export" validate_cmd export "$spec" --no-path-check "${export_ov[@]}"
    step 0 "$GC_LOGS/06_export.log" "${RTDETR[@]}" export -e "$spec" "${export_ov[@]}"
    for dt in FP16 INT8; do
      eval "local ov=(${engine_ov[$dt]})"
      check "rtdetr validate --action gen_trt_engine ($dt)" validate_cmd gen_trt_engine "$spec" --no-path-check "${ov[@]}"
      step 0 "$GC_LOGS/06_trt_$dt.log" "${RTDETR[@]}" gen_trt_engine -e "$spec" "${ov[@]}"
    done
    check "rtdetr validate --action evaluate (checkpoint)" validate_cmd evaluate "$spec" --no-path-check "${eval_pt[@]}"
    step 0 "$GC_LOGS/06_eval_pytorch.log" "${RTDETR[@]}" evaluate -e "$spec" "${eval_pt[@]}"
    for dt in FP16 INT8; do
      local ev=("${common[@]}" "evaluate.trt_engine=$dep/model_$dt.engine" "evaluate.results_dir=$dep/eval_$dt")
      check "rtdetr validate --action evaluate (evaluate.trt_engine, $dt)" validate_cmd evaluate "$spec" --no-path-check "${ev[@]}"
      step 0 "$GC_LOGS/06_eval_$dt.log" "${RTDETR[@]}" evaluate -e "$spec" "${ev[@]}"
    done
    finish_checks
  fi
  fig checkpoint="$ckpt"
  ensure_data || fail "rtdetr dataset synth failed"
  step 120 "$GC_LOGS/06_export.log" "${RTDETR[@]}" export -e "$spec" "${export_ov[@]}"
  local rc=$?
  copy_artifact "$dep/export/status.json" export.status.json
  gc figjson "$GC_FIG/6.json" export "$dep/export/status.json" "exit=$rc"
  if [ "$(status_get "$dep/export/status.json" final)" != SUCCESS ]; then
    tail -n 25 "$GC_LOGS/06_export.log"
    fail "rtdetr export: $(status_get "$dep/export/status.json" final) (exit $rc): $(status_get "$dep/export/status.json" message)"
  fi
  echo "export: $(status_get "$dep/export/status.json" message)"
  step 600 "$GC_LOGS/06_eval_pytorch.log" "${RTDETR[@]}" evaluate -e "$spec" "${eval_pt[@]}"
  rc=$?
  copy_artifact "$dep/eval_pytorch/status.json" eval_pytorch.status.json
  gc figjson "$GC_FIG/6.json" models.pytorch "$dep/eval_pytorch/status.json" "exit=$rc" "model=$ckpt"
  echo "evaluate (PyTorch checkpoint): test_mAP50 $(status_get "$dep/eval_pytorch/status.json" test_mAP50)"
  local bad=()
  [ "$(status_get "$dep/eval_pytorch/status.json" final)" = SUCCESS ] || bad+=("evaluate of the checkpoint (exit $rc)")
  for dt in FP16 INT8; do
    eval "local ov=(${engine_ov[$dt]})"
    step 600 "$GC_LOGS/06_trt_$dt.log" "${RTDETR[@]}" gen_trt_engine -e "$spec" "${ov[@]}"
    rc=$?
    local st="$dep/trt_$dt/status.json"
    copy_artifact "$st" "gen_trt_engine_$dt.status.json"
    gc figjson "$GC_FIG/6.json" "engines.$dt" "$st" "exit=$rc"
    if [ "$(status_get "$st" final)" != SUCCESS ] || [ ! -f "$dep/model_$dt.engine" ]; then
      bad+=("gen_trt_engine $dt: $(status_get "$st" final) (exit $rc): $(status_get "$st" message)")
      tail -n 15 "$GC_LOGS/06_trt_$dt.log"
      continue
    fi
    echo "gen_trt_engine $dt: $(status_get "$st" message)"
    local ev=("${common[@]}" "evaluate.trt_engine=$dep/model_$dt.engine" "evaluate.results_dir=$dep/eval_$dt")
    step 600 "$GC_LOGS/06_eval_$dt.log" "${RTDETR[@]}" evaluate -e "$spec" "${ev[@]}"
    rc=$?
    st="$dep/eval_$dt/status.json"
    copy_artifact "$st" "eval_$dt.status.json"
    gc figjson "$GC_FIG/6.json" "models.$dt" "$st" "exit=$rc" "model=$dep/model_$dt.engine"
    echo "evaluate ($dt engine): test_mAP50 $(status_get "$st" test_mAP50)"
    [ "$(status_get "$st" final)" = SUCCESS ] || {
      bad+=("evaluate of the $dt engine (exit $rc): $(status_get "$st" message)")
      tail -n 15 "$GC_LOGS/06_eval_$dt.log"
    }
  done
  local maps
  maps="test_mAP50: checkpoint $(status_get "$dep/eval_pytorch/status.json" test_mAP50)"
  for dt in FP16 INT8; do maps+=", $dt engine $(status_get "$dep/eval_$dt/status.json" test_mAP50)"; done
  reason "$maps"
  if [ "${#bad[@]}" -gt 0 ]; then
    local item
    for item in "${bad[@]}"; do reason "$item"; done
    exit 1
  fi
}

section_7() { # speed: R18 at 640
  local sp="$GC_WORK/speed"
  local torch_rows=("$GC_PY" "$GC_PYDIR/speed.py" torch --rows "$GC_FIG/7.json" --onnx "$sp/r18_640.onnx")
  local ov=("gen_trt_engine.onnx_file=$sp/r18_640.onnx" "gen_trt_engine.trt_engine=$sp/r18_640_FP16.engine"
    "gen_trt_engine.results_dir=$sp/gen_trt_engine" gen_trt_engine.tensorrt.data_type=FP16
    gen_trt_engine.batch_size=1 "gen_trt_engine.timing_cache=$sp/timing.cache" "${EXTRA[@]}")
  local build=("${RTDETR[@]}" gen_trt_engine -e "$ROOT/configs/rtdetr_r18.yaml" "${ov[@]}")
  local trt_rows=("$GC_PY" "$GC_PYDIR/speed.py" trt --rows "$GC_FIG/7.json" --engine "$sp/r18_640_FP16.engine"
    --reason "$GC_FIG/7.reason")
  if [ "$GC_DRY" = 1 ]; then
    step 0 "$GC_LOGS/07_speed_torch.log" "${torch_rows[@]}"
    step 0 "$GC_LOGS/07_trt_build.log" "${build[@]}"
    step 0 "$GC_LOGS/07_speed_trt.log" "${trt_rows[@]}"
    # the timing code itself, on the CPU at 128 px, 1 call per row (an ONNX file is exported too)
    check "speed.py torch --check (CPU, 128 px)" "$GC_PY" "$GC_PYDIR/speed.py" torch --check \
      --rows "$GC_WORK/speed_check.json" --onnx "$GC_WORK/speed_check/r18_128.onnx"
    local cov=("${ov[@]}")
    cov[0]="gen_trt_engine.onnx_file=$GC_WORK/speed_check/r18_128.onnx"
    check "rtdetr validate --action gen_trt_engine (R18, FP16, batch 1; the path checked)" \
      validate_cmd gen_trt_engine "$ROOT/configs/rtdetr_r18.yaml" "${cov[@]}"
    finish_checks
  fi
  have cuda || skip "torch.cuda.is_available() is False: no GPU timings"
  mkdir -p "$sp"
  step 300 "$GC_LOGS/07_speed_torch.log" "${torch_rows[@]}"
  local rc=$?
  tail -n 20 "$GC_LOGS/07_speed_torch.log"
  [ "$rc" = 0 ] || reason "speed.py torch exited $rc (logs/07_speed_torch.log)"
  if ! have tensorrt; then
    reason "TensorRT FP16 row skipped: tensorrt does not import ($(import_error tensorrt))"
    gc fig "$GC_FIG/7.json" trt_skipped="tensorrt does not import"
  elif [ ! -f "$sp/r18_640.onnx" ]; then
    reason "TensorRT FP16 row skipped: the ONNX export failed (logs/07_speed_torch.log)"
    rc=1
  else
    local t0
    t0=$(ms_now)
    step 600 "$GC_LOGS/07_trt_build.log" "${build[@]}"
    local brc=$?
    local build_s=$((($(ms_now) - t0) / 1000))
    copy_artifact "$sp/gen_trt_engine/status.json" speed_gen_trt_engine.status.json
    if [ "$(status_get "$sp/gen_trt_engine/status.json" final)" = SUCCESS ]; then
      step 120 "$GC_LOGS/07_speed_trt.log" "${trt_rows[@]}" --build-seconds "$build_s"
      local trc=$?
      tail -n 5 "$GC_LOGS/07_speed_trt.log"
      [ "$trc" = 0 ] || {
        reason "speed.py trt exited $trc (logs/07_speed_trt.log)"
        rc=1
      }
    else
      tail -n 15 "$GC_LOGS/07_trt_build.log"
      reason "TensorRT FP16 engine of R18 at 640 not built (exit $brc, ${build_s}s): $(status_get "$sp/gen_trt_engine/status.json" message)"
      rc=1
    fi
  fi
  exit "$rc"
}

# ------------------------------------------------------------------------------------------------
# the main process
# ------------------------------------------------------------------------------------------------

usage() {
  sed -n '2,/^set -o pipefail/p' "$SELF" | sed -e 's/^# \{0,1\}//' -e '/^set -o pipefail/d'
}

pick_python() {
  if [ -n "${GPU_CHECK_PYTHON:-}" ]; then
    GC_PY=$GPU_CHECK_PYTHON
  else
    GC_PY=python3
    if ! python3 -c 'import torch, yaml' >/dev/null 2>&1 && [ "$GC_DRY" = 1 ] && [ -x "$ROOT/.venv/bin/python" ]; then
      GC_PY="$ROOT/.venv/bin/python"
      echo "python3 has no torch here: the dry run uses $GC_PY"
    fi
  fi
  if ! command -v "$GC_PY" >/dev/null 2>&1; then
    echo "error: no python interpreter '$GC_PY' (set GPU_CHECK_PYTHON)" >&2
    exit 2
  fi
  GC_PY=$(command -v "$GC_PY")
}

write_helpers() { # the Python helpers, into $GC_PYDIR
  mkdir -p "$GC_PYDIR"
  cat >"$GC_PYDIR/gc.py" <<'PYEOF'
"""gpu_check helpers: the report (gpu_check.json and gpu_check.md), status.json and summary.json
readers, pytest's summary, and the watcher that sees which GPU each automl trial process got.
Standard library only."""

import datetime
import json
import os
import re
import sys
import time
from pathlib import Path

STATES = ("PASSED", "FAILED", "SKIPPED", "DRY_RUN", "PENDING", "RUNNING")


def _load(path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def _write(path, data):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(data if isinstance(data, str) else json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def status_lines(path):
    lines = []
    try:
        for raw in Path(path).read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                pass
    except OSError:
        pass
    return lines


def status_summary(path):
    """The last run's result in a TAO status.json: final state, message, kpis, epochs."""
    lines = status_lines(path)
    if not lines:
        return {"final": None, "message": f"no status.json at {path}"}
    last = lines[-1]
    out = {"final": last.get("status"), "message": last.get("message", "")}
    epochs = [line for line in lines if line.get("status") == "RUNNING" and "epoch" in line]
    if epochs:
        out["epochs"] = len({line["epoch"] for line in epochs})
        kpi = epochs[-1].get("kpi") or {}
        if "val_mAP50" in kpi:
            out["last_val_mAP50"] = _number(kpi["val_mAP50"])
        out["train_seconds"] = round(sum(float(line.get("epoch_seconds") or 0) for line in epochs), 2)
    for key, value in (last.get("kpi") or {}).items():
        out[key] = _number(value)
    for key in ("best_epoch", "best_checkpoint", "onnx_file", "engine_file"):
        if key in last:
            out[key] = last[key]
    return out


def cmd_status(path, field=None):
    summary = status_summary(path)
    if field:
        value = summary.get(field)
        print("" if value is None else value)
    else:
        print(json.dumps(summary))


def _set(data, dotted, value):
    keys = dotted.split(".")
    for key in keys[:-1]:
        data = data.setdefault(key, {})
    data[keys[-1]] = value


def _value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def cmd_fig(fig_file, *pairs):
    data = _load(fig_file, {}) or {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        _set(data, key, _value(value))
    _write(fig_file, data)


def cmd_figjson(fig_file, key, source, *pairs):
    """Put a JSON file (or a status.json's summary) under ``key`` of the figures, with extra key=value."""
    data = _load(fig_file, {}) or {}
    if source.endswith("status.json"):
        value = status_summary(source)
    else:
        value = _load(source, {"missing": source})
    if isinstance(value, dict):
        for pair in pairs:
            name, _, text = pair.partition("=")
            value[name] = _value(text)
    _set(data, key, value)
    _write(fig_file, data)


# --- the report ---------------------------------------------------------------------------------


def _now():
    return datetime.datetime.now().isoformat(timespec="seconds")


def cmd_init(out_dir, mode, total, *sections):
    out = Path(out_dir)
    data = {
        "script": "bench/gpu_check.sh",
        "mode": mode,
        "started": _now(),
        "started_epoch": time.time(),
        "updated": _now(),
        "elapsed_s": 0.0,
        "total_budget_s": int(total),
        "host": os.uname().nodename,
        "sections": [],
    }
    for item in sections:
        number, name, budget = item.split(":")
        data["sections"].append(
            {
                "number": int(number),
                "name": name,
                "state": "PENDING",
                "seconds": None,
                "budget_s": int(budget),
                "timeout_s": None,
                "reason": "",
                "figures": {},
                "log": f"logs/{int(number):02d}_{name}.log",
            }
        )
    _finish(out, data)


def _tail(path, lines=20):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return []
    return [line[-300:] for line in text.splitlines()[-lines:]]


def _read(path):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def cmd_record(
    out_dir, number, state, seconds, timeout_s, reason_file, fig_file, plan_file, checks_file, log
):
    out = Path(out_dir)
    data = _load(out / "gpu_check.json")
    if not data:
        raise SystemExit(f"no {out / 'gpu_check.json'}")
    section = data["sections"][int(number) - 1]
    figures = _load(fig_file, {}) or {}
    plan = [line for line in _read(plan_file).splitlines() if line]
    if plan:
        figures["commands"] = plan
    checks = [line for line in _read(checks_file).splitlines() if line]
    if checks:
        figures["checks"] = checks
    section.update(
        state=state,
        seconds=None if seconds == "" else round(float(seconds), 1),
        timeout_s=None if timeout_s == "" else int(timeout_s),
        reason=" | ".join(line for line in _read(reason_file).splitlines() if line),
        figures=figures,
        log=os.path.relpath(log, out) if log else section.get("log"),
    )
    if state == "FAILED":
        section["log_tail"] = _tail(log)
    else:
        section.pop("log_tail", None)
    _finish(out, data)


def cmd_finish(out_dir):
    out = Path(out_dir)
    data = _load(out / "gpu_check.json")
    data["finished"] = _now()
    _finish(out, data)
    counts = data["counts"]
    print(", ".join(f"{counts[s]} {s}" for s in STATES if counts.get(s)))


def _finish(out, data):
    data["updated"] = _now()
    data["elapsed_s"] = round(time.time() - data["started_epoch"], 1)
    data["counts"] = {s: sum(1 for x in data["sections"] if x["state"] == s) for s in STATES}
    _write(out / "gpu_check.json", data)
    _write(out / "gpu_check.md", markdown(data))


def _cell(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def _fmt(value, digits=4):
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return "" if value is None else str(value)


def markdown(data):
    mode = "dry run (nothing trained)" if data["mode"] == "dry_run" else "GPU run"
    lines = [
        f"# gpu_check: {mode}",
        "",
        f"`bash bench/gpu_check.sh{' --dry-run' if data['mode'] == 'dry_run' else ''}` on {data['host']}, "
        f"started {data['started']}, {data['elapsed_s']} s so far (limit {data['total_budget_s']} s).",
        "",
        "| # | section | state | seconds | budget (s) | reason |",
        "|---:|---|---|---:|---:|---|",
    ]
    for s in data["sections"]:
        lines.append(
            f"| {s['number']} | {s['name']} | {s['state']} | {_fmt(s['seconds'])} | {s['budget_s']} | "
            f"{_cell(s['reason'])} |"
        )
    by_name = {s["name"]: s for s in data["sections"]}
    env = by_name["environment"]["figures"]
    if env.get("torch"):
        lines += ["", "## Environment", ""]
        for key in ("python", "torch", "cuda", "cudnn", "nccl", "gpus", "driver", "onnxruntime_providers"):
            if key in env:
                lines.append(f"- {key}: {_cell(env[key])}")
        mods = env.get("modules") or {}
        if mods:
            lines.append(
                "- modules: "
                + ", ".join(
                    f"{name} {m.get('version', '')}".strip() if m.get("ok") else f"{name} MISSING"
                    for name, m in mods.items()
                )
            )
    runs = by_name["train_precisions"]["figures"].get("runs") or {}
    if runs:
        lines += [
            "",
            "## Trainings (configs/demo.yaml, 2 epochs, synthetic 200 images at 128 px)",
            "",
            "| train.precision | status | best val_mAP50 | last val_mAP50 | epochs | train s | exit |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for name, r in runs.items():
            lines.append(
                f"| {name} | {r.get('final')} | {_fmt(r.get('best_val_mAP50'))} | "
                f"{_fmt(r.get('last_val_mAP50'))} | {_fmt(r.get('epochs'))} | {_fmt(r.get('train_seconds'))} | "
                f"{r.get('exit')} |"
            )
    trials = by_name["automl_gpu_placement"]["figures"].get("trials") or []
    if trials:
        lines += [
            "",
            "## automl trials",
            "",
            "| trial | state | val_mAP50 | seconds | GPU (CUDA_VISIBLE_DEVICES) |",
        ]
        lines.append("|---:|---|---:|---:|---|")
        for t in trials:
            lines.append(
                f"| {t.get('number')} | {t.get('state')} | {_fmt(t.get('value'))} | {_fmt(t.get('seconds'))} | "
                f"{_cell(t.get('gpu', ''))} |"
            )
    models = by_name["tensorrt"]["figures"].get("models") or {}
    if models:
        lines += ["", "## Deployed models (test set)", "", "| model | status | test_mAP50 | test_mAP |"]
        lines.append("|---|---|---:|---:|")
        for name, m in models.items():
            lines.append(
                f"| {name} | {m.get('final')} | {_fmt(m.get('test_mAP50'))} | {_fmt(m.get('test_mAP'))} |"
            )
    speed = by_name["speed"]["figures"]
    rows = speed.get("rows") or []
    if rows or speed.get("skipped_rows"):
        lines += [
            "",
            "## Speed: RT-DETR R18 at 640x640",
            "",
            f"{speed.get('device', '')}; median of {speed.get('iters', '?')} calls after warm-up "
            f"({speed.get('train_iters', '?')} for a training step; TensorRT twice as many); random weights "
            "and images (the timing does not depend on them). The paper's figure is RT-DETR-R18, TensorRT FP16, "
            "batch 1 on a T4.",
            "",
            "| workload | precision | batch | ms median | ms fastest | images/s | paper |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for r in rows:
            paper = f"{r['paper_fps']} FPS ({r['paper_device']})" if r.get("paper_fps") else ""
            lines.append(
                f"| {_cell(r['workload'])} | {r['precision']} | {r['batch']} | {r['median_ms']:.2f} | "
                f"{r['fastest_ms']:.2f} | {r['images_per_s']:.1f} | {paper} |"
            )
        for r in speed.get("skipped_rows") or []:
            lines.append(
                f"| {_cell(r['workload'])} | {r.get('precision', '')} | | | | | skipped: {_cell(r['reason'])} |"
            )
    lines += ["", "Per-section figures, commands and log tails: `gpu_check.json`; logs: `logs/`.", ""]
    return "\n".join(lines)


# --- pytest -----------------------------------------------------------------------------------


def cmd_pytest(log, rc, fig_file, reason_file):
    """The state of the gpu tests from pytest's output: PASSED / SKIPPED / FAILED (the exit status)."""
    text = Path(log).read_text(errors="replace") if Path(log).is_file() else ""
    counts = {}
    summary = [
        line
        for line in text.splitlines()
        if re.search(r"\b(passed|failed|skipped|deselected|error|errors|no tests ran)\b", line)
        and " in " in line
    ]
    if summary:
        for number, word in re.findall(
            r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed|xpassed)", summary[-1]
        ):
            counts[word.rstrip("s") if word.startswith("error") else word] = int(number)
    collection = re.findall(r"^ERROR (\S+?\.py)(?: - (.*))?$", text, re.MULTILINE)
    test_errors = re.findall(r"^ERROR (\S+::\S+)", text, re.MULTILINE)
    failed = re.findall(r"^FAILED (\S+)", text, re.MULTILINE)
    skipped = re.findall(r"^SKIPPED \[\d+\] (.*)$", text, re.MULTILINE)
    fig = {
        "exit": int(rc),
        "counts": counts,
        "failed": failed,
        "test_errors": test_errors,
        "collection_errors": [f"{path}: {why}" if why else path for path, why in collection],
        "skip_reasons": sorted(set(skipped)),
    }
    cmd_fig(fig_file, *(f"{k}={json.dumps(v)}" for k, v in fig.items()))
    notes = []
    if collection:
        notes.append(
            f"{len(collection)} test module(s) could not be collected (a missing module?): "
            + "; ".join(f"{p}: {w}" if w else p for p, w in collection)[:600]
        )
    passed, nfailed = counts.get("passed", 0), counts.get("failed", 0) + len(test_errors)
    if int(rc) in (124, 137):
        state = "FAILED"
        notes.insert(0, "pytest was stopped by the time limit")
    elif nfailed:
        state = "FAILED"
        notes.insert(0, f"{nfailed} gpu test(s) failed: {', '.join(failed + test_errors)}")
    elif passed:
        state = "PASSED"
        notes.insert(
            0,
            f"{passed} gpu test(s) passed"
            + (f", {counts.get('skipped')} skipped" if counts.get("skipped") else ""),
        )
    elif counts.get("skipped"):
        state = "SKIPPED"
        notes.insert(0, f"every gpu test skipped: {'; '.join(sorted(set(skipped)))[:600]}")
    else:
        state = "FAILED"
        notes.insert(0, f"no gpu test ran (pytest exit {rc})")
    with open(reason_file, "a") as handle:
        handle.write("\n".join(notes) + "\n")
    print(f"gpu tests: {state}: {notes[0]}")
    raise SystemExit({"PASSED": 0, "SKIPPED": 3}.get(state, 1))


# --- automl -------------------------------------------------------------------------------------


def _proc_text(pid, name):
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes().split(b"\0")
    except OSError:
        return []


def cmd_watch(sweep, out_file, stop_file, limit=900):
    """Until ``stop_file`` exists: every trial process of ``sweep`` (its cmdline names
    trials/NNNN/spec.yaml) and the CUDA_VISIBLE_DEVICES in its environment."""
    seen = {}
    pattern = re.compile("/" + re.escape(Path(sweep).name) + r"/trials/(\d+)/spec\.yaml")
    started = time.time()
    while not Path(stop_file).exists() and time.time() - started < limit:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            cmdline = b" ".join(_proc_text(entry, "cmdline")).decode(errors="replace")
            match = pattern.search(cmdline)
            if not match:
                continue
            trial = str(int(match.group(1)))
            env = dict(
                item.decode(errors="replace").partition("=")[::2]
                for item in _proc_text(entry, "environ")
                if b"=" in item
            )
            record = seen.setdefault(trial, {"pids": [], "cuda_visible_devices": None})
            if int(entry) not in record["pids"]:
                record["pids"].append(int(entry))
                record["cuda_visible_devices"] = env.get("CUDA_VISIBLE_DEVICES")
                record["tao_visible_devices"] = env.get("TAO_VISIBLE_DEVICES")
                _write(out_file, seen)
        time.sleep(0.3)
    _write(out_file, seen)


def cmd_sweep(sweep, placement_file, rc, fig_file, reason_file):
    summary = _load(Path(sweep) / "summary.json")
    placement = _load(placement_file, {}) or {}
    notes, bad = [], False
    if not summary:
        notes.append(f"no summary.json in {sweep} (automl run exit {rc})")
        bad = True
        trials = []
    else:
        trials = summary.get("trials") or []
    rows = []
    recorded = False
    for t in trials:
        number = t.get("number")
        gpu_keys = {
            k: t[k] for k in ("gpus", "gpu", "devices", "cuda_visible_devices") if t.get(k) is not None
        }
        recorded = recorded or bool(gpu_keys)
        seen = placement.get(str(number)) or {}
        gpu = gpu_keys or seen.get("cuda_visible_devices")
        rows.append(
            {
                "number": number,
                "state": t.get("state"),
                "value": t.get("value"),
                "best_epoch": t.get("best_epoch"),
                "seconds": t.get("seconds"),
                "gpu": gpu if gpu not in (None, "") else "not seen",
                "error": t.get("error"),
            }
        )
    fig = {
        "exit": int(rc),
        "status": (summary or {}).get("status"),
        "best": (summary or {}).get("best"),
        "trials": rows,
        "gpu_in_summary": recorded,
    }
    cmd_fig(fig_file, *(f"{k}={json.dumps(v, default=str)}" for k, v in fig.items()))
    if summary:
        states = [r["state"] for r in rows]
        notes.append(f"sweep {summary.get('status')}, {len(rows)} trial(s): {', '.join(map(str, states))}")
        if int(rc) != 0:
            notes.append(f"automl run exited {rc}")
            bad = True
        if summary.get("status") != "FINISHED":
            notes.append(f"failure: {summary.get('failure')}")
            bad = True
        if len(rows) < 3:
            notes.append(f"{len(rows)} of 3 trials ran")
            bad = True
        failed = [r for r in rows if r["state"] == "FAIL"]
        for r in failed:
            notes.append(f"trial {r['number']} FAIL: {r['error']}")
        bad = bad or bool(failed)
        unseen = [r["number"] for r in rows if r["gpu"] == "not seen"]
        gpus = sorted({str(r["gpu"]) for r in rows if r["gpu"] != "not seen"})
        if not recorded:
            notes.append(
                "summary.json records no GPU per trial; the GPU is each trial process's CUDA_VISIBLE_DEVICES"
            )
        if gpus:
            notes.append(f"GPUs given: {', '.join(gpus)}")
        if unseen:
            notes.append(f"trial(s) {unseen}: process not seen, GPU unknown")
        if rows and len(unseen) == len(rows):
            notes.append("no trial process was seen, so the GPU placement is unproven")
            bad = True
        if any(r["gpu"] in ("", "-1") for r in rows):
            notes.append("a trial ran without a GPU (empty CUDA_VISIBLE_DEVICES)")
            bad = True
    with open(reason_file, "a") as handle:
        handle.write("; ".join(notes) + "\n")
    print("automl: " + "; ".join(notes))
    raise SystemExit(1 if bad else 0)


def main(argv):
    commands = {
        "status": cmd_status,
        "fig": cmd_fig,
        "figjson": cmd_figjson,
        "init": cmd_init,
        "record": cmd_record,
        "finish": cmd_finish,
        "pytest": cmd_pytest,
        "watch": cmd_watch,
        "sweep": cmd_sweep,
    }
    if not argv or argv[0] not in commands:
        raise SystemExit(f"usage: gc.py {{{'|'.join(commands)}}} ...")
    commands[argv[0]](*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
PYEOF

  cat >"$GC_PYDIR/env_probe.py" <<'PYEOF'
"""gpu_check section 1: the interpreter, torch and CUDA, the GPUs, and which modules import.

Usage: env_probe.py FIGURES.json REASON.txt HAVE_CACHE [--dry-run]
Exit 0 when torch imports with a working CUDA GPU and every module the sections need imports (in a
dry run: whenever the probe itself works); 1 otherwise, with the reasons in REASON.txt."""

import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time

fig_file, reason_file, have_file = sys.argv[1:4]
dry = "--dry-run" in sys.argv
NEEDED = [
    "torch",
    "torchvision",
    "numpy",
    "yaml",
    "PIL",
    "scipy",
    "pycocotools",
    "onnx",
    "onnxruntime",
    "optuna",
    "timm",
    "jsonschema",
    "rich",
]
OPTIONAL = {
    "tensorrt": "section 6 and the TensorRT speed row",
    "pytest": "section 2",
    "mlflow": "automl tracking (section 5 runs --no-track)",
}
problems, notes = [], []
fig = json.load(open(fig_file)) if os.path.exists(fig_file) else {}
fig["python"] = f"{platform.python_version()} ({sys.executable})"
fig["cpus"] = os.cpu_count()
modules = {}
for name in NEEDED + list(OPTIONAL):
    started = time.perf_counter()
    try:
        module = importlib.import_module(name)
        modules[name] = {
            "ok": True,
            "version": str(getattr(module, "__version__", "")),
            "import_s": round(time.perf_counter() - started, 2),
        }
    except Exception as error:  # ImportError, OSError from a broken CUDA library, ...
        modules[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
fig["modules"] = modules
for name, m in modules.items():
    print(f"module {name:12s} {'ok ' + m['version'] if m['ok'] else 'MISSING: ' + m['error']}")
missing = [n for n in NEEDED if not modules[n]["ok"]]
if missing:
    problems.append(
        "modules the sections need do not import: "
        + ", ".join(f"{n} ({modules[n]['error']})" for n in missing)
    )
for name, what in OPTIONAL.items():
    if not modules[name]["ok"]:
        notes.append(f"{name} missing: {what} will be skipped")
have = {
    "tensorrt": modules["tensorrt"]["ok"],
    "pytest": modules["pytest"]["ok"],
    "cuda": False,
    "ort_cuda": False,
}
if modules["onnxruntime"]["ok"]:
    import onnxruntime

    fig["onnxruntime_providers"] = onnxruntime.get_available_providers()
    have["ort_cuda"] = "CUDAExecutionProvider" in fig["onnxruntime_providers"]
    print(f"onnxruntime providers: {fig['onnxruntime_providers']}")
    if not have["ort_cuda"]:
        notes.append(
            "onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu not installed): its speed row is skipped"
        )
smi = shutil.which("nvidia-smi")
smi_gpus = []
if smi:
    out = subprocess.run([smi, "-L"], capture_output=True, text=True, check=False)
    smi_gpus = [line for line in out.stdout.splitlines() if line.startswith("GPU ")]
    query = subprocess.run(
        [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    )
    fig["driver"] = (
        query.stdout.strip().splitlines()[0] if query.stdout.strip() else query.stderr.strip()[:200]
    )
fig["nvidia_smi"] = smi_gpus if smi else "nvidia-smi not found"
if modules["torch"]["ok"]:
    import torch

    fig["torch"] = torch.__version__
    fig["cuda"] = f"built for CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}"
    if torch.cuda.is_available():
        have["cuda"] = True
        fig["cudnn"] = torch.backends.cudnn.version()
        try:
            fig["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
        except Exception as error:  # a torch built without NCCL
            fig["nccl"] = f"unavailable: {error}"
        gpus = []
        for index in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(index)
            gpus.append(f"{index}: {p.name}, {p.total_memory / 2**30:.0f} GiB, sm_{p.major}{p.minor}")
        fig["gpus"] = gpus
        fig["bf16_supported"] = torch.cuda.is_bf16_supported()
        a = torch.randn(2048, 2048, device="cuda", dtype=torch.float16)
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(20):
            b = a @ a
        torch.cuda.synchronize()
        seconds = (time.perf_counter() - started) / 20
        fig["fp16_matmul_2048_tflops"] = round(2 * 2048**3 / seconds / 1e12, 1)
        if not torch.isfinite(b.float()).all():
            problems.append("a CUDA fp16 matmul gave non-finite values")
    elif not dry:
        problems.append(
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU: torch.cuda.is_available() is False"
            + (f" although nvidia-smi lists {len(smi_gpus)}" if smi_gpus else "")
        )
else:
    problems.append("torch does not import: nothing can run")
for key in (
    "torch",
    "cuda",
    "cudnn",
    "nccl",
    "gpus",
    "bf16_supported",
    "fp16_matmul_2048_tflops",
    "driver",
    "nvidia_smi",
):
    if key in fig:
        print(f"{key}: {fig[key]}")
json.dump(fig, open(fig_file, "w"), indent=2)
with open(have_file, "a") as handle:
    handle.writelines(f"{k}={int(v)}\n" for k, v in have.items())
with open(reason_file, "a") as handle:
    handle.write("\n".join(problems + notes) + ("\n" if problems or notes else ""))
for line in problems:
    print(f"problem: {line}")
sys.exit(1 if problems and not dry else 0)
PYEOF

  cat >"$GC_PYDIR/nccl_check.py" <<'PYEOF'
"""gpu_check section 4: NCCL under torchrun, with the project's own collectives and DDP wrapper.

Run under ``python -m torch.distributed.run --nproc-per-node=N``. Each rank joins an NCCL process
group (gloo on the CPU with --check), all_reduces a CUDA tensor, runs model.engine.distributed's
all_reduce_mean / all_gather_objects / broadcast_object, wraps the demo network (configs/demo.yaml)
with model.actions.train.wrap_distributed (SyncBatchNorm + DDP, as `rtdetr train` does) and takes one
forward/backward step; rank 0 writes what it saw to --out. With one process the project's World says
"not distributed" (rtdetr never starts a process group for one rank), so this check tells the
helpers the world is distributed to make them use the group."""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

root = Path(os.environ.get("GC_ROOT") or Path.cwd())
sys.path.insert(0, str(root))

from model.actions.train import wrap_distributed  # noqa: E402
from model.engine.distributed import World, all_gather_objects, all_reduce_mean, broadcast_object  # noqa: E402
from model.network.rtdetr import build_criterion, build_model  # noqa: E402
from model.spec import resolve_spec  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
parser.add_argument("--check", action="store_true", help="gloo on the CPU (the dry run)")
args = parser.parse_args()


class GroupWorld(World):
    """A World that uses the process group even with one rank."""

    @property
    def distributed(self) -> bool:
        return dist.is_initialized()


rank, local_rank, size = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
cuda = torch.cuda.is_available() and not args.check
device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
if cuda:
    torch.cuda.set_device(device)
started = time.perf_counter()
dist.init_process_group(backend="nccl" if cuda else "gloo")
init_s = time.perf_counter() - started
world = GroupWorld(rank=rank, local_rank=local_rank, size=size, device=device)
report = {
    "backend": dist.get_backend(),
    "world_size": size,
    "device": str(device),
    "init_s": round(init_s, 2),
}
if cuda:
    report["nccl_version"] = ".".join(map(str, torch.cuda.nccl.version()))
    report["gpu"] = torch.cuda.get_device_name(device)

tensor = torch.full((1024,), float(rank + 1), device=device)
dist.all_reduce(tensor)
expected = size * (size + 1) / 2
report["all_reduce_ok"] = bool(torch.allclose(tensor, torch.full_like(tensor, expected)))
report["all_reduce_mean"] = all_reduce_mean(float(rank + 1), world)
report["all_gather_objects"] = all_gather_objects({"rank": rank}, world)
report["broadcast_object"] = broadcast_object("from rank 0" if rank == 0 else None, world)

spec = resolve_spec("train", root / "configs" / "demo.yaml", [], check_paths=False)
torch.manual_seed(0)
model = build_model(spec).to(device).train()
ddp = wrap_distributed(model, spec, world)
criterion = build_criterion(spec).to(device)
generator = torch.Generator().manual_seed(rank)
targets = [
    {
        "labels": torch.randint(0, 3, (4,), generator=generator).to(device),
        "boxes": torch.cat(
            [torch.rand(4, 2, generator=generator) * 0.5 + 0.25, torch.full((4, 2), 0.2)], 1
        ).to(device),
    }
    for _ in range(2)
]
images = torch.rand(2, 3, 128, 128, generator=generator).to(device)
loss = sum(criterion(ddp(images, targets), targets).values())
loss.backward()
grads = [p.grad for p in model.parameters() if p.grad is not None]
report["ddp_wrapper"] = type(ddp).__name__
report["sync_batchnorm_layers"] = sum(isinstance(m, torch.nn.SyncBatchNorm) for m in ddp.modules())
report["ddp_loss"] = round(float(loss), 4)
report["grads_finite"] = bool(grads) and all(bool(torch.isfinite(g).all()) for g in grads)
# DDP averaged the gradients over the ranks: every rank holds the same first gradient
first = grads[0].flatten()[:16].clone()
gathered = [torch.zeros_like(first) for _ in range(size)]
dist.all_gather(gathered, first)
report["grads_equal_across_ranks"] = all(bool(torch.allclose(g, gathered[0])) for g in gathered)
dist.barrier()
dist.destroy_process_group()
ok = report["all_reduce_ok"] and report["grads_finite"] and report["grads_equal_across_ranks"]
if not args.check and report["backend"] != "nccl":
    report["problem"] = (
        f"the process group uses {report['backend']}, not NCCL (torch.cuda.is_available() is {cuda})"
    )
    ok = False
report["ok"] = ok
if rank == 0:
    Path(args.out).write_text(json.dumps(report, indent=2))
    print("nccl_check: " + json.dumps(report))
sys.exit(0 if ok else 1)
PYEOF

  cat >"$GC_PYDIR/speed.py" <<'PYEOF'
"""gpu_check section 7: the speed of RT-DETR R18 at 640x640 on the GPU.

speed.py torch --rows FIG.json --onnx FILE [--check]
    a training step at batch 16 (bf16 and fp16 autocast as train.precision does, and fp32), eager
    inference at batch 1 (the deploy-mode network, RepVGG fused, channels_last; fp32 / fp16 / bf16
    autocast as evaluate.precision does), the ONNX export (model.deploy.onnx_export, as rtdetr export)
    and ONNX Runtime with the CUDA provider at batch 1. --check: the same code on the CPU at 128 px,
    one call per row (the dry run).
speed.py trt --rows FIG.json --engine FILE [--build-seconds S]
    the TensorRT FP16 engine (rtdetr gen_trt_engine) through TrtEngineRunner at batch 1, beside the
    paper's 217 FPS for RT-DETR-R18 on a T4.

Rows are added to FIG.json ("rows", "skipped_rows") after every measurement. The preset, the
timing loop and the training targets come from bench/deploy_speed.py and bench/model_speed.py
(both CPU scripts: their own command lines time the CPU only)."""

import argparse
import json
import os
import sys
from pathlib import Path

root = Path(os.environ.get("GC_ROOT") or Path.cwd())
sys.path[:0] = [str(root), str(root / "bench")]

import torch  # noqa: E402
from deploy_speed import _spec, _time  # noqa: E402  (R18 preset at a size; median and fastest of N calls)
from model_speed import _targets  # noqa: E402  (random boxes and labels for a training step)

from model.engine.validation import autocast_for  # noqa: E402  (train/evaluate precision -> autocast)

PAPER_FPS, PAPER_DEVICE = 217, "T4, paper"


def load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def save(path, data):
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def add_row(args, workload, precision, batch, timing, **extra):
    median, fastest = timing
    row = {
        "workload": workload,
        "precision": precision,
        "batch": batch,
        "median_ms": round(median * 1000, 3),
        "fastest_ms": round(fastest * 1000, 3),
        "images_per_s": round(batch / median, 1),
        **extra,
    }
    data = load(args.rows)
    data.setdefault("rows", []).append(row)
    save(args.rows, data)
    print(
        f"{workload:45s} {precision:14s} batch {batch:3d}: {row['median_ms']:9.2f} ms median, "
        f"{row['images_per_s']:8.1f} images/s",
        flush=True,
    )


def skip_row(args, workload, precision, reason):
    data = load(args.rows)
    data.setdefault("skipped_rows", []).append(
        {"workload": workload, "precision": precision, "reason": reason}
    )
    save(args.rows, data)
    print(f"{workload}: skipped: {reason}", flush=True)


def as_float(value):
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: as_float(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_float(v) for v in value]
    return value


def train_rows(args, spec, device, size, batch, iters, warmup, sync):
    """One training step as the trainer takes it: autocast_for(train.precision), the loss in fp32."""
    from model.network.rtdetr import build_criterion, build_model

    model = build_model(spec).to(device).train()
    criterion = build_criterion(spec).to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    images = torch.rand(batch, 3, size, size, device=device)
    targets = [{k: v.to(device) for k, v in t.items()} for t in _targets(batch)]
    for precision in ("bf16", "fp16", "fp32"):

        def step(precision=precision):
            with autocast_for(precision, device):
                outputs = model(images, targets)
            loss = sum(criterion(as_float(outputs), targets).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
            optimizer.step()
            sync()

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        timing = _time(step, iters, warmup)
        extra = (
            {"peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
            if device.type == "cuda"
            else {}
        )
        name = f"{precision} autocast" if precision != "fp32" else "fp32"
        add_row(args, "train step (fwd + loss + bwd + AdamW)", name, batch, timing, **extra)


def eager_rows(args, spec, device, size, iters, warmup, sync):
    """Batch-1 inference of the deploy-mode network as evaluate runs it (autocast_for(precision))."""
    from model.network.rtdetr import build_model

    model = build_model(spec).deploy().to(device).to(memory_format=torch.channels_last)
    image = torch.rand(1, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        for precision in ("fp32", "fp16", "bf16"):

            def forward(precision=precision):
                with autocast_for(precision, device):
                    model(image)
                sync()

            name = precision if precision == "fp32" else f"{precision} autocast"
            add_row(args, "eager inference (deploy, channels_last)", name, 1, _time(forward, iters, warmup))


def run_torch(args):
    from model.deploy.onnx_export import export_onnx, onnxruntime_session
    from model.network.rtdetr import build_model

    device = torch.device("cpu" if args.check else "cuda")
    size = 128 if args.check else args.size  # 128: the smallest size whose feature positions hold 300 queries
    train_batch = 2 if args.check else args.train_batch
    iters, warmup = (1, 0) if args.check else (args.iters, args.warmup)
    train_iters, train_warmup = (1, 0) if args.check else (args.train_iters, args.train_warmup)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    data = load(args.rows)
    data.update(
        model="r18",
        size=size,
        iters=iters,
        train_iters=train_iters,
        device=(torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU (check)")
        + f", torch {torch.__version__}",
    )
    save(args.rows, data)
    spec = _spec("r18", size)
    torch.manual_seed(0)
    train_rows(args, spec, device, size, train_batch, train_iters, train_warmup, sync)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    eager_rows(args, spec, device, size, iters, warmup, sync)

    onnx_file = Path(args.onnx)
    onnx_file.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(build_model(spec), onnx_file, height=size, width=size, device=device)
    print(f"exported {onnx_file}", flush=True)
    import onnxruntime as ort

    providers = ort.get_available_providers()
    if device.type == "cuda" and "CUDAExecutionProvider" not in providers:
        skip_row(args, "ONNX Runtime", "fp32", f"no CUDAExecutionProvider (providers: {providers})")
        return 0
    session = onnxruntime_session(onnx_file, device=str(device))
    used = session.get_providers()[0]
    feed = {session.get_inputs()[0].name: torch.rand(1, 3, size, size).numpy()}
    session.run(None, feed)
    add_row(
        args,
        f"ONNX Runtime ({used}, numpy in/out)",
        "fp32",
        1,
        _time(lambda: session.run(None, feed), iters, warmup),
    )
    if device.type == "cuda" and used != "CUDAExecutionProvider":
        print(f"warning: ONNX Runtime fell back to {used}", flush=True)
        return 1
    return 0


def run_trt(args):
    from model.deploy.trt_engine_runner import TrtEngineRunner

    runner = TrtEngineRunner(args.engine, device="cuda")
    size = runner.input_shape[-1]
    image = torch.rand(1, 3, runner.input_shape[-2], size, device="cuda")

    def infer():
        runner(image)
        torch.cuda.synchronize()

    timing = _time(infer, args.iters * 2, args.warmup * 2)
    add_row(
        args,
        "TensorRT FP16 (rtdetr gen_trt_engine, TrtEngineRunner)",
        "FP16 engine",
        1,
        timing,
        paper_fps=PAPER_FPS,
        paper_device=PAPER_DEVICE,
        build_seconds=args.build_seconds,
    )
    line = f"TensorRT FP16 R18 {size}x{size} batch 1: {1 / timing[0]:.0f} FPS here; the paper: {PAPER_FPS} FPS on a T4"
    print(line, flush=True)
    if args.reason:
        with open(args.reason, "a") as handle:
            handle.write(line + "\n")
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("torch", "trt"))
    parser.add_argument("--rows", required=True)
    parser.add_argument("--onnx")
    parser.add_argument("--engine")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--train-batch", type=int, default=16)
    parser.add_argument("--train-iters", type=int, default=10)
    parser.add_argument("--train-warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--build-seconds", type=float)
    parser.add_argument("--reason", help="append the TensorRT FPS line to this file")
    args = parser.parse_args()
    return run_torch(args) if args.mode == "torch" else run_trt(args)


if __name__ == "__main__":
    sys.exit(main())
PYEOF
}

reap_leftovers() { # stop processes a section left behind (their command line names the scratch folder)
  local d pid cmd found=()
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$$" ] && continue
    cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
    case $cmd in
      *"$GC_WORK"*)
        kill -TERM "$pid" 2>/dev/null && found+=("$pid") && echo "  stopped leftover process $pid: ${cmd:0:150}"
        ;;
    esac
  done
  if [ "${#found[@]}" -gt 0 ]; then
    sleep 3
    for pid in "${found[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  fi
}

section_main() { # bash gpu_check.sh --section N (the environment comes from the main process)
  GC_SECTION=$1
  commands_setup
  cd "$ROOT" || exit 1
  echo "== section $GC_SECTION ${NAMES[$GC_SECTION]} ($([ "$GC_DRY" = 1 ] && echo dry run || echo GPU run), $(date '+%F %T'))"
  "section_$GC_SECTION"
}

main() {
  if [ "${1:-}" = --section ]; then # a section process, started below with the main process's environment
    section_main "$2"
    exit $?
  fi
  GC_DRY=0
  while [ $# -gt 0 ]; do
    case $1 in
      --dry-run) GC_DRY=1 ;;
      -h | --help)
        usage
        exit 0
        ;;
      *)
        echo "error: unknown argument '$1' (use --dry-run, or no argument on the GPU machine; --help)" >&2
        exit 2
        ;;
    esac
    shift
  done
  cd "$ROOT" || exit 2
  local t0
  t0=$(ms_now)
  pick_python
  GC_OUT=${OUT:-$ROOT/gpu_check_out}
  mkdir -p "$GC_OUT" || exit 2
  GC_OUT=$(cd "$GC_OUT" && pwd)
  GC_WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 2
  GC_LOGS=$GC_OUT/logs
  GC_FIG=$GC_WORK/fig
  GC_PYDIR=$GC_WORK/py
  GC_DATA=$GC_WORK/data
  mkdir -p "$GC_LOGS" "$GC_FIG"
  # rtdetr and automl on PATH are used when they are this project's console scripts (an `rtdetr` of
  # a TAO container is another program); PYTHONPATH makes them run this tree's code either way
  GC_USE_PATH=0
  if [ "${GPU_CHECK_FROM_SOURCE:-0}" != 1 ] && command -v rtdetr >/dev/null 2>&1 && command -v automl >/dev/null 2>&1 &&
    grep -qs "model.cli" "$(command -v rtdetr)" && grep -qs "automl.cli" "$(command -v automl)"; then
    GC_USE_PATH=1
  fi
  export GC_DRY GC_PY GC_OUT GC_WORK GC_LOGS GC_FIG GC_PYDIR GC_DATA GC_USE_PATH GC_ROOT=$ROOT
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
  export RTDETR_CACHE_DIR=$GC_WORK/cache MPLCONFIGDIR=$GC_WORK/mpl
  write_helpers
  commands_setup

  local total=${GPU_CHECK_TOTAL_S:-450}
  local selected=${GPU_CHECK_SECTIONS:-1 2 3 4 5 6 7}
  local specs=() n
  for n in 1 2 3 4 5 6 7; do specs+=("$n:${NAMES[$n]}:${BUDGETS[$n]}"); done
  gc init "$GC_OUT" "$([ "$GC_DRY" = 1 ] && echo dry_run || echo gpu)" "$total" "${specs[@]}" || exit 2

  echo "gpu_check $([ "$GC_DRY" = 1 ] && echo '--dry-run ')in $ROOT"
  echo "  python $GC_PY; rtdetr = $(quote "${RTDETR[@]}"); automl = $(quote "${AUTOML[@]}")"
  echo "  results $GC_OUT (gpu_check.json, gpu_check.md, logs/); scratch $GC_WORK"
  [ -n "${GPU_CHECK_EXTRA_OVERRIDES:-}" ] && echo "  extra overrides for every spec: $GPU_CHECK_EXTRA_OVERRIDES"
  echo "  limit ${total}s in all; budgets: $(for n in 1 2 3 4 5 6 7; do printf '%s %ss, ' "${NAMES[$n]}" "${BUDGETS[$n]}"; done)"
  data_overrides
  local data_q
  data_q="$(quote "${DATA_OV[@]}")"
  if [ "$GC_DRY" = 1 ]; then
    echo "  the plan below writes \$WORK for the scratch folder ($GC_WORK) and \$DATA_OVERRIDES for:"
    # shellcheck disable=SC2016  # a literal $WORK
    echo "    ${data_q//"$GC_WORK"/'$WORK'}"
  fi
  local cum=0 failed=0
  for n in 1 2 3 4 5 6 7; do
    cum=$((cum + BUDGETS[n]))
    local name=${NAMES[$n]} log
    log="$GC_LOGS/$(printf '%02d' "$n")_$name.log"
    local files=("$GC_FIG/$n.reason" "$GC_FIG/$n.json" "$GC_FIG/$n.plan" "$GC_FIG/$n.checks" "$log")
    local elapsed=$((($(ms_now) - t0) / 1000))
    echo
    if ! [[ " $selected " == *" $n "* ]]; then
      echo "not selected (GPU_CHECK_SECTIONS=$selected)" >"$GC_FIG/$n.reason"
      gc record "$GC_OUT" "$n" SKIPPED "" "" "${files[@]}"
      printf '[%4ds] section %s %s: SKIPPED (not in GPU_CHECK_SECTIONS)\n' "$elapsed" "$n" "$name"
      continue
    fi
    local allowed
    if [ "$GC_DRY" = 1 ]; then
      allowed=$DRY_SECTION_TIMEOUT
    else
      local end=$cum
      [ "$end" -gt "$total" ] && end=$total
      allowed=$((end - elapsed))
    fi
    if [ "$allowed" -lt 10 ]; then
      echo "no time left: ${elapsed}s of the ${total}s limit used" >"$GC_FIG/$n.reason"
      gc record "$GC_OUT" "$n" SKIPPED "" "" "${files[@]}"
      printf '[%4ds] section %s %s: SKIPPED (no time left)\n' "$elapsed" "$n" "$name"
      continue
    fi
    printf '[%4ds] section %s %s: budget %ss, timeout %ss\n' "$elapsed" "$n" "$name" "${BUDGETS[$n]}" "$allowed"
    gc record "$GC_OUT" "$n" RUNNING "" "$allowed" "${files[@]}"
    local s0 rc
    s0=$(ms_now)
    GC_DEADLINE=$(($(date +%s) + allowed)) timeout -k 15 "$allowed" bash "$SELF" --section "$n" >"$log" 2>&1
    rc=$?
    local ms=$(($(ms_now) - s0)) state
    reap_leftovers | tee -a "$log"
    case $rc in
      0) state=PASSED ;;
      "$SKIP_RC") state=SKIPPED ;;
      124 | 137)
        state=FAILED
        echo "timed out after ${allowed}s (budget ${BUDGETS[$n]}s)" >>"$GC_FIG/$n.reason"
        ;;
      *) state=FAILED ;;
    esac
    if [ "$GC_DRY" = 1 ] && [ "$state" != FAILED ]; then state=DRY_RUN; fi
    [ "$state" = FAILED ] && failed=$((failed + 1))
    gc record "$GC_OUT" "$n" "$state" "$(awk "BEGIN { print $ms / 1000 }")" "$allowed" "${files[@]}"
    elapsed=$((($(ms_now) - t0) / 1000))
    printf '[%4ds] section %s %s: %s in %.1fs' "$elapsed" "$n" "$name" "$state" "$(awk "BEGIN { print $ms / 1000 }")"
    [ -s "$GC_FIG/$n.reason" ] && printf ': %s' "$(tr '\n' ' ' <"$GC_FIG/$n.reason" | cut -c1-400)"
    echo
    if [ "$GC_DRY" = 1 ] && [ -s "$GC_FIG/$n.plan" ]; then
      local line
      while IFS= read -r line; do
        # shellcheck disable=SC2016  # literal $DATA_OVERRIDES and $WORK in the plan shown
        line=${line//"$data_q"/'$DATA_OVERRIDES '}
        # shellcheck disable=SC2016
        echo "    would run: ${line//"$GC_WORK"/'$WORK'}"
      done <"$GC_FIG/$n.plan"
    fi
    if [ "$state" = FAILED ]; then
      echo "    --- last lines of ${log#"$GC_OUT"/}:"
      tail -n 8 "$log" | sed 's/^/    /'
    fi
  done
  echo
  printf 'gpu_check done in %ss: %s\n' "$((($(ms_now) - t0) / 1000))" "$(gc finish "$GC_OUT")"
  echo "  $GC_OUT/gpu_check.json"
  echo "  $GC_OUT/gpu_check.md"
  if [ "${GPU_CHECK_KEEP_WORK:-0}" = 1 ]; then
    echo "  scratch kept: $GC_WORK"
  else
    rm -rf "$GC_WORK"
  fi
  [ "$failed" = 0 ]
}

main "$@"
