#!/usr/bin/env bash
# Equal-budget ablation of the ImageNet image features on CamVid: trains one L-MAE (Small) per arm for the same minutes
# with the same seed, threads and data order, evaluates each on val at mask ratios 0.5 and 0.6, and writes one table
# (PA-mIoU and per-class PA IoU, epochs reached) with the machine it ran on: the image-features tables of docs/quality.md.
#
#   build/ablation-image-features.sh DATA_DIR [OUT_DIR] [--minutes M] [--threads N] [--jobs N] [--precision P]
#                                    [--arms LIST] [--limit N]
#
#   DATA_DIR       CamVid in the SegNet tutorial layout: train/ trainannot/ val/ valannot/
#   OUT_DIR        where everything goes (default artifacts/ablation-image-features); an arm whose folder holds a
#                  trained model and its evaluation is not run again (delete the folder to rerun it)
#   --minutes M    training budget per arm (default 30; no epoch starts after it, the running one finishes)
#   --threads N    threads of each arm's training and evaluation (default 1)
#   --jobs N       arms run side by side (default: cores / threads); the budget is wall time, so keep jobs x threads
#                  at most the core count or the arms slow each other
#   --precision P  fp32 (default) or bf16, for every arm
#   --arms LIST    comma list of arms (default none,all,encoder,supplement,refinement,finetune):
#                    none        --image-features none (the network without the ResNet18)
#                    all         the default: features in the encoder tokens, the supplement and the refinement
#                    encoder     --image-features encoder      (encoder tokens only)
#                    supplement  --image-features supplement   (Image Patch Supplement only)
#                    refinement  --image-features refinement   (pixel refinement only)
#                    finetune    the default plus --image-encoder-lr 0.1 (the stride-16 stage trains at 0.1x the rate)
#   --limit N      evaluate only the first N val images: a smoke test, NOT the protocol's numbers
#
# Writes OUT_DIR/ARM/ (model, train.log, eval-val/), OUT_DIR/commands.txt, OUT_DIR/machine.txt (one entry per start of
# the script: its arms, date, commit, CPU, load) and OUT_DIR/results.md (every arm of this start's --arms).
# Needs the .NET 10 SDK and python3 (standard library only).
set -euo pipefail

usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage ;; esac
data=$1; shift
out=artifacts/ablation-image-features
if [ $# -ge 1 ] && [ "${1#--}" = "$1" ]; then out=$1; shift; fi
minutes=30; threads=1; jobs=""; precision=fp32; arms=none,all,encoder,supplement,refinement,finetune; limit=""
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --precision) precision=$2; shift 2 ;;
    --arms) arms=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "ablation-image-features.sh: unknown option '$1'" >&2; usage ;;
  esac
done
[ -n "$jobs" ] || jobs=$(( $(nproc) / threads > 0 ? $(nproc) / threads : 1 ))
for d in train trainannot val valannot; do
  [ -d "$data/$d" ] || { echo "ablation-image-features.sh: $data has no $d/ folder; expected the SegNet tutorial's CamVid layout (README.md, Data sets)." >&2; exit 1; }
done

flags_of() {
  case "$1" in
    none) echo "--image-features none" ;;
    all) echo "" ;;
    encoder) echo "--image-features encoder" ;;
    supplement) echo "--image-features supplement" ;;
    refinement) echo "--image-features refinement" ;;
    finetune) echo "--image-encoder-lr 0.1" ;;
    *) echo "ablation-image-features.sh: unknown arm '$1' (none, all, encoder, supplement, refinement, finetune)" >&2; return 1 ;;
  esac
}
IFS=, read -ra arm_list <<< "$arms"
for arm in "${arm_list[@]}"; do flags_of "$arm" > /dev/null; done

# shellcheck source=build/lmae-run.sh
source "$(dirname "$0")/lmae-run.sh"
prepare_run "$data" "$out"

{
  echo "arms $arms:"
  echo "date (UTC): $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$repo" rev-parse HEAD)$([ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ] && echo ' (uncommitted changes)')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) logical cores"
  echo "avx512_bf16: $(grep -qw avx512_bf16 /proc/cpuinfo && echo yes || echo no)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "budget: $minutes min per arm, $threads thread(s) each, $jobs side by side, precision $precision, seed 1"
} | tee -a "$out/machine.txt"

run_arm() {
  local arm=$1 dir="$out/$1"
  if [ -f "$dir/camvid-small.zip" ] && [ -f "$dir/eval-val/metrics.json" ]; then echo "== $arm: done before, kept"; return; fi
  mkdir -p "$dir"
  # shellcheck disable=SC2207
  local flags=($(flags_of "$arm"))
  local train_cmd=(train --data "$data" --format camvid --val "$data" --out "$dir/camvid-small.zip" --config Small
                   --epochs 200 --minutes "$minutes" --threads "$threads" --seed 1 --precision "$precision" "${flags[@]}")
  local eval_cmd=(evaluate --model "$dir/camvid-small.zip" --data "$data" --format camvid --split val --ratios 0.5,0.6
                  --out "$dir/eval-val" --threads "$threads" --force)
  [ "$arm" = "${arm_list[0]}" ] && eval_cmd+=(--baselines)
  [ -n "$limit" ] && eval_cmd+=(--limit "$limit")
  printf '%s\n' "lmae ${train_cmd[*]}" "lmae ${eval_cmd[*]}" > "$dir/commands.txt"
  echo "== $arm: training ($minutes min)"
  rm -f "$dir/camvid-small.zip"
  "${lmae[@]}" "${train_cmd[@]}" > "$dir/train.log" 2>&1
  echo "== $arm: evaluating"
  "${lmae[@]}" "${eval_cmd[@]}" > "$dir/evaluate-val.log" 2>&1
  echo "== $arm: done"
}

running=0
for arm in "${arm_list[@]}"; do
  run_arm "$arm" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait
for arm in "${arm_list[@]}"; do cat "$out/$arm/commands.txt"; done > "$out/commands.txt"

echo "== table"
python3 - "$out" "$repo" "${arm_list[@]}" <<'EOF'
import os, re, subprocess, sys
out, repo, arms = sys.argv[1], sys.argv[2], sys.argv[3:]
epochs = {}
for arm in arms:
    done = [int(m.group(1)) for m in re.finditer(r"^epoch (\d+)/\d+ done", open(os.path.join(out, arm, "train.log")).read(), re.M)]
    epochs[arm] = max(done) if done else 0
table = subprocess.run([sys.executable, os.path.join(repo, "build", "metrics-table.py")]
                       + [f"{arm}={os.path.join(out, arm, 'eval-val')}" for arm in arms],
                       capture_output=True, text=True, check=True).stdout
with open(os.path.join(out, "results.md"), "w") as f:
    f.write("# Image features: equal-budget ablation (CamVid val)\n\n")
    f.write("".join(f"    {line}" for line in open(os.path.join(out, "machine.txt"))) + "\n")
    f.write("Epochs reached: " + ", ".join(f"{arm} {epochs[arm]}" for arm in arms) + "\n\n")
    f.write("Commands: commands.txt\n\n" + table)
print(open(os.path.join(out, "results.md")).read())
EOF
