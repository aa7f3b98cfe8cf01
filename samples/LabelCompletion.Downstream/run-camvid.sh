#!/usr/bin/env bash
# Runs the downstream sample on CamVid: an L-MAE trained on the training labels with half their 16-pixel patches hidden
# completes them, and the same segmentation network is trained on the full, degraded, NearestKnown-filled and
# L-MAE-completed labels and scored on the test split. Defaults: 25 minutes of L-MAE training, then 25 epochs per arm
# (each arm also stops after --minutes-per-arm; the table says how many epochs and minutes each arm had). Measured on a
# 2-core AMD EPYC VM with --threads 1: completing the 367 training labels took 13.6 minutes, each arm 5.5-6 minutes.
#
#   samples/LabelCompletion.Downstream/run-camvid.sh DATA_DIR OUT_DIR [--minutes-per-arm M] [--lmae-minutes M]
#                                                    [--epochs N] [--threads N] [--lmae-model PATH] [-- MORE OPTIONS]
#
#   DATA_DIR            CamVid in the SegNet tutorial layout: train/ trainannot/ test/ testannot/ (val/ valannot/ unused)
#   OUT_DIR             where everything goes; existing results are overwritten
#   --minutes-per-arm M wall-clock cap of each arm's segmenter training (default 10)
#   --lmae-minutes M    L-MAE training budget (default 25)
#   --epochs N          segmenter epochs per arm (default 25)
#   --threads N         torch threads (default: all cores)
#   --lmae-model PATH   complete with this saved L-MAE (e.g. OUT_DIR/lmae.zip of an earlier run) instead of training one
#   -- MORE OPTIONS     passed on to the program (dotnet run --project samples/LabelCompletion.Downstream -- --help)
#
# Writes into OUT_DIR: results.md and results.csv (the table), lmae.zip (the L-MAE, when trained), run.log (the program's
# output) and machine.txt (date, git commit, CPU model, cores, memory, the command).
set -euo pipefail

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
case "$1" in -h|--help) usage ;; esac
data=$1; out=$2; shift 2
minutes_per_arm=10; lmae_minutes=25; epochs=25; threads=$(nproc); lmae_model=""; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes-per-arm) minutes_per_arm=$2; shift 2 ;;
    --lmae-minutes) lmae_minutes=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --lmae-model) lmae_model=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "run-camvid.sh: unknown option '$1'" >&2; usage ;;
  esac
done
for d in train trainannot test testannot; do
  [ -d "$data/$d" ] || { echo "run-camvid.sh: $data has no $d/ folder; expected CamVid in the SegNet tutorial layout (samples/LabelCompletion.Downstream/README.md)." >&2; exit 1; }
done

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
data=$(cd "$data" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

args=(--data "$data" --out "$out" --epochs "$epochs" --minutes-per-arm "$minutes_per_arm" --lmae-minutes "$lmae_minutes" --threads "$threads")
[ -n "$lmae_model" ] && args+=(--lmae-model "$(cd "$(dirname "$lmae_model")" && pwd)/$(basename "$lmae_model")")
args+=("${extra[@]}")

{
  echo "date (UTC): $(date -u '+%Y-%m-%d %H:%M:%S')"
  echo "git commit: $(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ' (uncommitted changes)' || true)"
  echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //') ($(nproc) cores)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo ".NET SDK: $(dotnet --version)"
  echo "command: dotnet samples/LabelCompletion.Downstream/bin/Release/net10.0/LabelCompletion.Downstream.dll ${args[*]}"
} > "$out/machine.txt"
cat "$out/machine.txt"

echo "== building"
dotnet build "$here/LabelCompletion.Downstream.csproj" -c Release -nologo -v quiet
echo "== running (log: $out/run.log)"
start=$(date +%s)
dotnet "$here/bin/Release/net10.0/LabelCompletion.Downstream.dll" "${args[@]}" 2>&1 | tee "$out/run.log"
echo "wall time: $(( ($(date +%s) - start) / 60 )) min" | tee -a "$out/machine.txt"
