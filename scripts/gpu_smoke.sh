#!/usr/bin/env bash
# GPU smoke test, one GPU, under 8 minutes: every GPU-only path of vissl_lite once, then one table.
#
#   bash scripts/gpu_smoke.sh              # on a machine with one CUDA GPU
#   bash scripts/gpu_smoke.sh --cpu-dry    # the same rows on the CPU, tiny: checks commands and keys
#
# Rows: nccl collectives and the engine on CUDA (a ResNet, channels_last) in one torchrun process;
# bf16 and fp16 AMP; MODEL.COMPILE with MODEL.ACTIVATION_CHECKPOINTING; DISTRIBUTED.STRATEGY=fsdp on
# one GPU (skipped with a message where the key does not exist); engine_name=extract_features; the
# benchmarks with --device cuda (bench_knn at 1.28M x 384 / 50k queries, bench_trainer --compile
# and --activation-memory); dino_vits16_in1k for 200 steps on synthetic data.
# Each row's output goes to $OUT/<row>.log; the table gives status, seconds and the row's number.
# Record the table in README.md (section "Scaling out").

set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DRY=0
if [[ "${1:-}" == "--cpu-dry" ]]; then DRY=1; fi
OUT=${OUT:-$(mktemp -d /tmp/vissl_lite_gpu_smoke.XXXX)}
mkdir -p "$OUT"
PY=${PYTHON:-python}

if [[ $DRY == 1 ]]; then
  DEVICE=cpu; BACKEND=gloo; MACHINE="MACHINE.DEVICE=cpu"
  TINY="OPTIMIZER.num_epochs=1 DATA.TRAIN.DATA_LIMIT=64 DATA.TRAIN.BATCHSIZE_PER_REPLICA=32 DATA.TEST.DATA_LIMIT=32"
  KNN_ARGS="--bank 20000 --queries 500"; BENCH_STEPS="--steps 1 --repeats 1"; COMPILE_BACKEND=aot_eager
  VITS_STEPS="OPTIMIZER.num_epochs=1 DATA.TRAIN.NUM_SAMPLES_SYNTHETIC=4 DATA.TRAIN.BATCHSIZE_PER_REPLICA=2 DATA.TRAIN.TRANSFORMS.LOCAL_CROPS_NUMBER=2"
  BENCH_TRAINER_DRY=1; LIMIT_SCALE=10  # a shared CPU is no GPU: the time limits are for the GPU
else
  DEVICE=cuda; BACKEND=nccl; MACHINE="MACHINE.DEVICE=gpu"
  TINY="OPTIMIZER.num_epochs=1"
  KNN_ARGS=""; BENCH_STEPS="--steps 5 --repeats 2"; COMPILE_BACKEND=inductor
  # 3200 synthetic images / 64 per step = 50 steps per epoch, 4 epochs = 200 steps
  VITS_STEPS="OPTIMIZER.num_epochs=4 DATA.TRAIN.NUM_SAMPLES_SYNTHETIC=3200 DATA.TRAIN.BATCHSIZE_PER_REPLICA=64"
  BENCH_TRAINER_DRY=0; LIMIT_SCALE=1
fi
COMMON="HOOKS.PROGRESS_BAR=false HOOKS.LOG_FREQUENCY=10 $MACHINE"

ROWS=()

# row NAME TIMEOUT_S COMMAND... : run COMMAND with a time limit, log to $OUT/NAME.log, remember the row
row() {
  local name=$1 limit=$2; shift 2
  local start status seconds result
  echo "== $name: $*" >&2
  start=$SECONDS
  timeout "$((limit * LIMIT_SCALE))" "$@" > "$OUT/$name.log" 2>&1
  status=$?
  seconds=$((SECONDS - start))
  if [[ $status == 0 ]]; then result=ok; elif [[ $status == 124 ]]; then result="TIMEOUT(${limit}s)"; else result="FAIL($status)"; fi
  ROWS+=("$name|$result|$seconds|$(summary "$name")")
}

skip() {  # skip NAME WHY
  ROWS+=("$1|skipped|0|$2")
}

# The number worth a glance in the row's log: the last loss and kNN of a run, a benchmark line.
summary() {
  local log="$OUT/$1.log" run="$OUT/runs/$1"
  if [[ -f "$run/metrics.jsonl" ]]; then
    "$PY" - "$run/metrics.jsonl" <<'EOF'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
losses = [r for r in records if "loss" in r]
knn = [r["knn_top1"] for r in records if "knn_top1" in r]
last = losses[-1] if losses else {}
parts = [f"steps {last.get('step', '?')}" if "step" in last else "", f"loss {last['loss']:.4f}" if last else "",
         f"images/s {last['images_per_s']:.0f}" if "images_per_s" in last else "", f"kNN {100 * knn[-1]:.1f}%" if knn else ""]
print(" ".join(p for p in parts if p) or "no metrics")
EOF
  elif grep -q "^bench_knn:" "$log" 2>/dev/null; then
    grep "^bench_knn:" "$log" | sed 's/^bench_knn: //' | cut -c1-150
  elif grep -q '"compiled_over_eager"\|"memory_ratio"' "$log" 2>/dev/null; then
    grep -o '"\(compiled_over_eager\|memory_ratio\)": [0-9.]*' "$log" | tr '\n' ' ' | sed 's/"//g'
  elif grep -q "^features: " "$log" 2>/dev/null; then
    grep "features of" "$log" | sed 's/.*features of //' | cut -c1-150
  else
    tail -n 1 "$log" 2>/dev/null | cut -c1-150
  fi
}

run_row() {  # run_row NAME TIMEOUT_S OVERRIDES... : `python run.py` in one process, run directory $OUT/runs/NAME
  local name=$1 limit=$2; shift 2
  row "$name" "$limit" "$PY" run.py "$@" $COMMON "hydra.run.dir=$OUT/runs/$name"
}

# 1. nccl (gloo in the dry run) in one torchrun process: vissl_lite starts no process group for a
#    world of one, so the collectives the engine uses are called here directly
cat > "$OUT/collectives.py" <<'PYTHON'
import os
import torch
import torch.distributed as dist
cuda = torch.cuda.is_available()
dist.init_process_group("nccl" if cuda else "gloo")
device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
x = torch.arange(4.0, device=device)
dist.all_reduce(x)
gathered = [torch.empty_like(x)]
dist.all_gather(gathered, x)
dist.broadcast(x, src=0)
assert gathered[0].tolist() == [0.0, 1.0, 2.0, 3.0]
print(f"{dist.get_backend()} all_reduce / all_gather / broadcast ok on {torch.cuda.get_device_name() if cuda else 'cpu'}")
dist.destroy_process_group()
PYTHON
row collectives_1proc 120 "$PY" -m torch.distributed.run --standalone --nproc_per_node=1 "$OUT/collectives.py"

# 2. the engine on CUDA under torchrun (one process); a ResNet on CUDA runs channels_last
row cuda_channels_last 120 "$PY" -m torch.distributed.run --standalone --nproc_per_node=1 run.py \
  config=pretrain/simclr/simclr_digits $TINY DISTRIBUTED.BACKEND=$BACKEND $COMMON "hydra.run.dir=$OUT/runs/cuda_channels_last"

# 3-4. AMP
run_row amp_bf16 120 config=pretrain/simclr/simclr_digits $TINY MODEL.AMP_PARAMS.USE_AMP=true MODEL.AMP_PARAMS.AMP_DTYPE=bfloat16
if [[ $DRY == 1 ]]; then
  skip amp_fp16 "float16 autocast with a GradScaler needs CUDA"
else
  run_row amp_fp16 120 config=pretrain/simclr/simclr_digits $TINY MODEL.AMP_PARAMS.USE_AMP=true MODEL.AMP_PARAMS.AMP_DTYPE=float16
fi

# 5. compile and activation checkpointing together (DINO with local crops: two crop sizes)
run_row compile 240 config=pretrain/dino/dino_digits $TINY DATA.TRAIN.TRANSFORMS.LOCAL_CROPS_NUMBER=2 \
  DATA.TRAIN.TRANSFORMS.LOCAL_CROP_SIZE=4 MODEL.COMPILE=true MODEL.COMPILE_BACKEND=$COMPILE_BACKEND \
  MODEL.ACTIVATION_CHECKPOINTING=true

# 6. fsdp on one GPU (DISTRIBUTED.STRATEGY, where this checkout has it)
if "$PY" -c "import dataclasses, sys; from vissl_lite.config.schema import DistributedConfig as D; sys.exit('STRATEGY' not in {f.name for f in dataclasses.fields(D)})" 2>/dev/null; then
  row fsdp_1gpu 180 "$PY" -m torch.distributed.run --standalone --nproc_per_node=1 run.py \
    config=pretrain/dino/dino_digits $TINY DISTRIBUTED.STRATEGY=fsdp DISTRIBUTED.BACKEND=$BACKEND $COMMON \
    "hydra.run.dir=$OUT/runs/fsdp_1gpu"
else
  skip fsdp_1gpu "DISTRIBUTED.STRATEGY is not in this checkout's schema"
fi

# 7. feature extraction from the compile row's checkpoint
row extract_features 120 "$PY" run.py config=pretrain/dino/dino_digits engine_name=extract_features \
  EXTRACT_FEATURES.PATCH_TOKENS=true $COMMON "hydra.run.dir=$OUT/runs/compile"

# 8. benchmarks
row bench_knn 180 "$PY" scripts/bench_knn.py --device $DEVICE $KNN_ARGS
if [[ $BENCH_TRAINER_DRY == 1 ]]; then  # ViT-S / ResNet-50 steps on two CPU cores take minutes: digits only
  skip bench_compile "dry run: scripts/bench_trainer.py --compile runs on the GPU only here"
  skip bench_activation_memory "dry run: scripts/bench_trainer.py --activation-memory runs on the GPU only here"
else
  row bench_compile 300 "$PY" scripts/bench_trainer.py --compile --backend $COMPILE_BACKEND --device $DEVICE $BENCH_STEPS
  row bench_activation_memory 180 "$PY" scripts/bench_trainer.py --activation-memory --device $DEVICE $BENCH_STEPS
fi

# 9. DINO ViT-S/16 for 200 steps on synthetic images (the recipe's fp16 AMP on the GPU)
if [[ $DRY == 1 ]]; then VITS_AMP="MODEL.AMP_PARAMS.USE_AMP=false"; else VITS_AMP=""; fi
run_row dino_vits16_200_steps 300 config=pretrain/dino/dino_vits16_in1k \
  DATA.TRAIN.DATA_SOURCES=[synthetic] DATA.TEST.DATA_SOURCES=[synthetic] HOOKS.KNN_MONITOR.ENABLED=false \
  $VITS_STEPS $VITS_AMP

# the table
{
  echo "vissl_lite gpu_smoke ($([[ $DRY == 1 ]] && echo "CPU dry run" || nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1), torch $("$PY" -c 'import torch; print(torch.__version__)'), $(date -u +%Y-%m-%d))"
  printf "%-24s %-14s %6s  %s\n" row status sec result
  for r in "${ROWS[@]}"; do
    IFS="|" read -r name result seconds text <<< "$r"
    printf "%-24s %-14s %6s  %s\n" "$name" "$result" "$seconds" "$text"
  done
  echo "logs: $OUT"
} | tee "$OUT/table.txt"
! grep -q "FAIL\|TIMEOUT" "$OUT/table.txt"
