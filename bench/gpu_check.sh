#!/usr/bin/env bash
# The GPU session in one script: what this repository runs when a CUDA machine is at hand.
#
#   bash bench/gpu_check.sh OUT_DIR [DEADLINE_SECONDS]
#
# 1. timing, alone on the machine: the CUDA memorization rows (ResNet-50 target <= 1.15);
# 2. correctness, in parallel: the `gpu` tests, and every example recorded then run with
#    `mltest` on the GPU (a copy per example, `accelerator: auto`);
# 3. the other bench sections one by one while the deadline (default 480 s from the start)
#    leaves a minute for the next.
# STEPS="2" (say) runs only those steps; STEP_TIMEOUT_S bounds each test or mltest command in
# step 2 (default 200). Six files land in OUT_DIR (summary, logs, JSON, tarballs of the
# examples' reports and of the bench sections); every step has a timeout, so a hang costs its
# step, not the session.
set -u
out=${1:?usage: bash bench/gpu_check.sh OUT_DIR [DEADLINE_SECONDS]}
deadline=$(($(date +%s) + ${2:-480}))
mkdir -p "$out"
export PYTHONUNBUFFERED=1
repo=$(pwd)
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"  # mltest and bench from this checkout
py=${PYTHON:-python3}
steps=${STEPS:-1 2 3}
step_s=${STEP_TIMEOUT_S:-200}

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$py" -c 'import torch, pytorch_lightning as pl, platform
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version(), "lightning", pl.__version__,
      "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)'
  nproc
} >"$out/summary.txt" 2>&1

# --- 1. the CUDA memorization rows, first and alone on the machine -------------------------
if [[ " $steps " == *" 1 "* ]]; then
timeout 300 "$py" -m bench.run --only memorization_speed --rows CUDA \
  --json "$out/bench_cuda.json" >"$out/bench_cuda.log" 2>&1
echo "bench CUDA rows: exit $?" >>"$out/bench_cuda.log"
grep -v "^$" "$out/bench_cuda.log" >>"$out/summary.txt"
fi

# --- 2. correctness, in parallel --------------------------------------------------------------
if [[ " $steps " == *" 2 "* ]]; then
gpu_tests=$(grep -rl "mark.gpu" tests --include='test_*.py' | sort | tr '\n' ' ')
# shellcheck disable=SC2086  # one argument per test file
(timeout "$step_s" "$py" -m pytest -p no:cacheprovider -v -rfE -m gpu -n 8 $gpu_tests \
  >"$out/gpu_tests.log" 2>&1; echo "exit $?" >>"$out/gpu_tests.log") &

work=$(mktemp -d)
for config in examples/*/mltest.yaml; do
  name=$(basename "$(dirname "$config")")
  (
    cp -r "examples/$name" "$work/$name"
    rm -rf "$work/$name/mltest-report"
    sed -i 's/accelerator: cpu/accelerator: auto/' "$work/$name/mltest.yaml"
    cd "$work/$name" || exit
    start=$(date +%s)
    timeout "$step_s" "$py" -m mltest baseline update --config mltest.yaml --report-dir record \
      >record.log 2>&1
    recorded=$?
    timeout "$step_s" "$py" -m mltest run --config mltest.yaml --report-dir run >run.log 2>&1
    echo "$name: record exit $recorded, run exit $?, $(($(date +%s) - start)) s" \
      >"$work/$name.result"
  ) &
done
wait
cat "$work"/*.result >>"$out/summary.txt"
grep -E "(PASSED|FAILED|ERROR|SKIPPED) |passed|failed" "$out/gpu_tests.log" >>"$out/summary.txt"
(cd "$work" && tar czf "$out/examples.tgz" --exclude='*.safetensors' --exclude=__pycache__ .)
fi

# --- 3. the other bench sections, one by one, while the deadline allows ---------------------
if [[ " $steps " == *" 3 "* ]]; then
cd "$repo" || exit
sections=$(mktemp -d)
for section in prediction_checks whole_suite startup supervision golden_compare \
  memorization_overhead seeds evaluation_gate against_torchtest memorization_speed; do
  left=$((deadline - $(date +%s)))
  if [ "$left" -lt 60 ]; then
    echo "bench $section: not run (${left} s left)" >>"$out/summary.txt"
    continue
  fi
  timeout $((left - 20)) "$py" -m bench.run --only "$section" --json "$sections/$section.json" \
    >"$sections/$section.log" 2>&1
  echo "bench $section: exit $?" >>"$out/summary.txt"
  tail -n +3 "$sections/$section.log" | grep -v '^$\|JSON written' >>"$out/summary.txt"
done
(cd "$sections" && tar czf "$out/bench_sections.tgz" .)
fi
cat "$out/summary.txt"
