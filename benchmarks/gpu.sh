#!/usr/bin/env bash
# GPU measurements in one go (about 2-4 minutes on one CUDA device); writes one JSON file.
#
#   benchmarks/gpu.sh [OUT.json]        (default: benchmarks/results/gpu.json)
#
# 1. benchmarks/gpu_speed.py: Trainer step time with k = 1, 10, 40 task heads (goal: 40 heads
#    at most 1.3x one head) and MultiMNIST LeNet training throughput (examples/s);
# 2. benchmarks/weighting_speed.py --ks 10: every weighting method's step time relative to
#    uniform on CUDA (goals_k10_cuda: parameter-level methods at most 2x uniform).
# Without a CUDA device it says so and exits with code 2, measuring nothing. Copy the figures
# and the GPU's name into benchmarks/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
OUT="${1:-benchmarks/results/gpu.json}"

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu.sh: no CUDA device (torch.cuda.is_available() is False with $PY); nothing measured" >&2
  exit 2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "gpu.sh: step time with 1, 10, 40 heads and MultiMNIST throughput ..." >&2
timeout 150 "$PY" benchmarks/gpu_speed.py --device cuda --ks 1 10 40 --steps 50 --train-size 10000 \
  > "$tmp/speed.json"
echo "gpu.sh: weighting methods relative to uniform at k = 10 ..." >&2
timeout 120 "$PY" benchmarks/weighting_speed.py --ks 10 --rounds 3 > "$tmp/weighting.json"

mkdir -p "$(dirname "$OUT")"
"$PY" - "$tmp/speed.json" "$tmp/weighting.json" "$OUT" <<'PYEOF'
import json, sys
speed, weighting, out = sys.argv[1:4]
s, w = json.load(open(speed)), json.load(open(weighting))
report = {
    "gpu": s["device"], "torch": s["torch"],
    "many_heads": s["many_heads"],
    "multimnist_lenet": s.get("multimnist_lenet"),
    "multimnist_lenet_bf16": s.get("multimnist_lenet_bf16"),
    "weighting_k10_cuda": {name: m["ratio"] for name, m in w["cuda"].get("k=10", {}).get("methods", {}).items()},
    "weighting_goals_k10_cuda": w.get("goals_k10_cuda"),
}
with open(out, "w") as fh:
    json.dump(report, fh, indent=1)
    fh.write("\n")
print(json.dumps(report, indent=1))
PYEOF
echo "gpu.sh: wrote $OUT" >&2
