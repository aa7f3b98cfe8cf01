#!/usr/bin/env bash
# Reproduces the CamVid results table of README.md: trains the default L-MAE (Small) on CamVid train with val for
# validation, evaluates the val and test splits at mask ratios 0.5 and 0.6 against the NearestKnown and ImageOnly
# baselines, runs the speed benchmarks (with lmae's process tuning, without the image features, and with the library's
# defaults), and writes the tables with the machine they came from.
#
#   build/reproduce-camvid.sh DATA_DIR [OUT_DIR] [--minutes M] [--epochs N] [--threads N] [--bench-threads N]
#                             [--limit N] [--repeats N] [--precision P] [--from STAGE]
#
#   DATA_DIR         CamVid in the SegNet tutorial layout: train/ trainannot/ val/ valannot/ test/ testannot/
#   OUT_DIR          where everything goes (default artifacts/reproduce-camvid); existing results are overwritten
#   --minutes M      training time budget (default 60; no epoch starts after it, the running one finishes)
#   --epochs N       most epochs (default 200: the budget decides)
#   --threads N      threads of training and evaluation (default: all cores)
#   --bench-threads N  threads of lmae bench (default 2, the setting of the numbers in docs/)
#   --limit N        evaluate only the first N images of each split: a smoke test, NOT the protocol's numbers
#                    (results.md says so)
#   --repeats N      timed repeats of the benchmarks (default 10)
#   --precision P    training precision: fp32 (default) or bf16 (saved with the model; evaluation uses it too)
#   --from STAGE     start at train (default), evaluate, bench or tables, reusing what OUT_DIR holds from the earlier
#                    stages (machine.json keeps the first stage's machine and commit, and lists each later start)
#
# Needs the .NET 10 SDK, git and python3 (standard library only). Writes into OUT_DIR:
#   machine.json                 date (UTC), git commit, CPU model and flags, cores, memory, .NET SDK, the options used
#   camvid-small.zip             the trained model; .curves.csv/.curves.png its training curves; train.log
#   eval-val/, eval-test/        metrics.json, confusion-matrices.json, per_class_pa_iou_r0.5.png/_r0.6.png; evaluate-*.log
#   bench.jsonl                  lmae bench --only matmul,train,infer (with lmae's process tuning)
#   bench-no-image-features.jsonl the same with --image-features none (the cost of the ImageNet features)
#   bench-library-defaults.jsonl the same with --library-defaults (the library as an application gets it)
#   results.csv, speed.csv       the tables, one row per (split, ratio, method) and per benchmark line
#   results.md                   the tables as README.md shows them, with machine, date, commit and commands
set -euo pipefail

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage ;; esac
data=$1; shift
out=artifacts/reproduce-camvid
if [ $# -ge 1 ] && [ "${1#--}" = "$1" ]; then out=$1; shift; fi
minutes=60; epochs=200; threads=$(nproc); bench_threads=2; limit=""; repeats=10; precision=fp32; from=train
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --bench-threads) bench_threads=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --precision) precision=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "reproduce-camvid.sh: unknown option '$1'" >&2; usage ;;
  esac
done
case "$from" in train) stage=0 ;; evaluate) stage=1 ;; bench) stage=2 ;; tables) stage=3 ;;
  *) echo "reproduce-camvid.sh: --from takes train, evaluate, bench or tables, not '$from'" >&2; exit 2 ;; esac
for d in train trainannot val valannot test testannot; do
  [ -d "$data/$d" ] || { echo "reproduce-camvid.sh: $data has no $d/ folder; expected the SegNet tutorial's CamVid layout (README.md, Data sets)." >&2; exit 1; }
done

# shellcheck source=build/lmae-run.sh
source "$(dirname "$0")/lmae-run.sh"
prepare_run "$data" "$out"

echo "== machine"
python3 - "$out/machine.json" "$repo" "$data" "$minutes" "$epochs" "$threads" "$bench_threads" "${limit:-}" "$repeats" "$from" "$precision" <<'EOF'
import json, os, platform, subprocess, sys, datetime
path, repo, data, minutes, epochs, threads, bench_threads, limit, repeats, start, precision = sys.argv[1:]
def run(*args):
    try: return subprocess.run(args, cwd=repo, capture_output=True, text=True).stdout.strip()
    except OSError: return ""
cpu = {}
try:
    for line in open("/proc/cpuinfo"):
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "flags") and key not in cpu: cpu[key] = value.strip()
except OSError: pass
mem = ""
try: mem = next(l.split(":")[1].strip() for l in open("/proc/meminfo") if l.startswith("MemTotal"))
except (OSError, StopIteration): pass
info = {
    "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "git_commit": run("git", "rev-parse", "HEAD"),
    "git_dirty": bool(run("git", "status", "--porcelain", "--untracked-files=no")),
    "cpu_model": cpu.get("model name", platform.processor()),
    "cpu_flags": cpu.get("flags", ""),
    "logical_cores": os.cpu_count(),
    "memory": mem,
    "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    "os": platform.platform(),
    "dotnet_sdk": run("dotnet", "--version"),
    "data": data,
    "options": {"minutes": float(minutes), "epochs": int(epochs), "threads": int(threads), "bench_threads": int(bench_threads),
                "limit": int(limit) if limit else None, "repeats": int(repeats), "precision": precision},
}
if start != "train" and os.path.exists(path):
    first = json.load(open(path))
    first.setdefault("later_starts", []).append({"from": start, **{k: info[k] for k in ("date_utc", "git_commit", "git_dirty", "cpu_model", "load_average_at_start")},
                                                 "options": info["options"]})
    json.dump(first, open(path, "w"), indent=2)
else:
    json.dump(info, open(path, "w"), indent=2)
print(f"{info['cpu_model']}, {info['logical_cores']} cores, commit {info['git_commit'][:12]}{' (uncommitted changes)' if info['git_dirty'] else ''}")
EOF

if [ $stage -le 0 ]; then
echo "== training (budget $minutes min)"
train_cmd=(train --data "$data" --format camvid --val "$data" --out "$out/camvid-small.zip" --config Small
           --epochs "$epochs" --minutes "$minutes" --threads "$threads" --seed 1 --precision "$precision")
printf '%s\n' "lmae ${train_cmd[*]}" > "$out/commands.txt"
rm -f "$out/camvid-small.zip"
"${lmae[@]}" "${train_cmd[@]}" 2>&1 | tee "$out/train.log"
fi

[ $stage -le 1 ] && for split in val test; do
  echo "== evaluating $split"
  eval_cmd=(evaluate --model "$out/camvid-small.zip" --data "$data" --format camvid --split "$split" --ratios 0.5,0.6
            --baselines --out "$out/eval-$split" --threads "$threads" --force)
  [ -n "$limit" ] && eval_cmd+=(--limit "$limit")
  printf '%s\n' "lmae ${eval_cmd[*]}" >> "$out/commands.txt"
  "${lmae[@]}" "${eval_cmd[@]}" 2>&1 | tee "$out/evaluate-$split.log"
done

if [ $stage -le 2 ]; then
echo "== benchmarks"
bench_cmd=(bench --only matmul,train,infer --threads "$bench_threads" --repeats "$repeats")
printf '%s\n' "lmae ${bench_cmd[*]}" "lmae ${bench_cmd[*]} --image-features none" "lmae ${bench_cmd[*]} --library-defaults" >> "$out/commands.txt"
"${lmae[@]}" "${bench_cmd[@]}" | tee "$out/bench.jsonl"
"${lmae[@]}" "${bench_cmd[@]}" --image-features none | tee "$out/bench-no-image-features.jsonl"
"${lmae[@]}" "${bench_cmd[@]}" --library-defaults | tee "$out/bench-library-defaults.jsonl"
fi

echo "== tables"
python3 - "$out" <<'EOF'
import csv, json, os, sys
out = sys.argv[1]
machine = json.load(open(os.path.join(out, "machine.json")))
commands = open(os.path.join(out, "commands.txt")).read().strip().splitlines()
rows = []
for split in ("val", "test"):
    m = json.load(open(os.path.join(out, f"eval-{split}", "metrics.json")))
    for r in m["results"]:
        rows.append({"split": split, "images": m["data"]["images"], "ratio": r["ratio"], "method": r["method"],
                     "pa_miou": r.get("pa_miou"), "miou": r.get("miou"), "pa_pixel_accuracy": r.get("pa_pixel_accuracy"),
                     **{f"pa_iou_{k}": v for k, v in r.get("pa_per_class_iou", {}).items()}})
keys = list(dict.fromkeys(k for r in rows for k in r))
with open(os.path.join(out, "results.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=keys); w.writeheader(); w.writerows(rows)

speed = []
for name, setting in (("bench.jsonl", "lmae (process tuning)"), ("bench-no-image-features.jsonl", "lmae, without image features"),
                      ("bench-library-defaults.jsonl", "library defaults")):
    if not os.path.exists(os.path.join(out, name)): continue
    for line in open(os.path.join(out, name)):
        line = line.strip()
        if not line.startswith("{"): continue
        b = json.loads(line)
        speed.append({"file": name, "setting": setting, "bench": b.get("bench"), "config": b.get("config"), "batch": b.get("batch"),
                      "threads": b.get("threads"), "precision": b.get("precision"),
                      "ms_per_image": b.get("ms_per_image", b.get("ms")), "gflop_per_s": b.get("gflop_per_s"),
                      "fraction_of_matmul": b.get("fraction_of_matmul"), "peak_rss_mb": b.get("peak_rss_mb")})
with open(os.path.join(out, "speed.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(speed[0])); w.writeheader(); w.writerows(speed)

def num(v, d=2): return "-" if v is None else f"{v:.{d}f}"
epochs = ""
curves = os.path.join(out, "camvid-small.zip.curves.csv")
if os.path.exists(curves):
    lines = [l for l in open(curves).read().splitlines()[1:] if l.strip()]
    if lines: epochs = f"{len(lines)} epochs in {float(lines[-1].split(',')[-1]) / 60:.1f} min"
limit = machine["options"]["limit"]
flags = set(machine["cpu_flags"].split())
speed_flags = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags) or "none of avx2/avx512"
load = machine.get("load_average_at_start")
md = [f"# CamVid results ({'SMOKE TEST: first %d images per split, not the protocol numbers' % limit if limit else 'full splits'})", "",
      f"Machine: {machine['cpu_model']}, {machine['logical_cores']} logical cores; {machine['date_utc']}; commit "
      f"{machine['git_commit'][:12]}{' with uncommitted changes' if machine['git_dirty'] else ''}; training budget "
      f"{machine['options']['minutes']:g} min ({epochs or 'see train.log'}). CPU flags for speed: {speed_flags} (all flags in "
      f"`machine.json`){'; load average at start %.1f' % load[0] if load else ''}.", "",
      *([("Stages started again (`--from`): " + "; ".join(f"{x['from']} at {x['date_utc']}, commit {x['git_commit'][:12]}"
                                                      for x in machine["later_starts"]) + "."), ""] if machine.get("later_starts") else []),
      "Commands (`build/reproduce-camvid.sh`):", "", "```", *commands, "```", "",
      "PA-mIoU over the hidden pixels (random 16-pixel patches, seed 0); `results.csv` has every class.", "",
      "| split | images | ratio | L-MAE | NearestKnown | ImageOnly |", "|---|---|---|---|---|---|"]
for split in ("val", "test"):
    for ratio in sorted({r["ratio"] for r in rows if r["split"] == split}):
        by = {r["method"]: r for r in rows if r["split"] == split and r["ratio"] == ratio}
        images = next(iter(by.values()))["images"]
        md.append(f"| {split} | {images} | {ratio} | " + " | ".join(num(by.get(k, {}).get("pa_miou")) for k in ("LMAE", "NearestKnown", "ImageOnly")) + " |")
names = [k[len("pa_iou_"):] for k in keys if k.startswith("pa_iou_")]
if names:
    md += ["", "PA IoU per class (the hidden pixels of each class):", "",
           "| split | ratio | method | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for r in rows:
        if r["method"] == "ImageOnly": continue
        md.append(f"| {r['split']} | {r['ratio']} | {r['method']} | " + " | ".join(num(r.get('pa_iou_' + n), 1) for n in names) + " |")
md += ["", "Speed (`speed.csv`; FP32, Small, ms per image: training a 224x224 crop at batch 8, completing a 480x360 image):", "",
       "| setting | benchmark | batch | ms per image | GFLOP/s | share of matmul | peak RSS (MB) |", "|---|---|---|---|---|---|---|"]
for s in speed:
    if s["bench"] == "matmul": continue
    md.append(f"| {s['setting']} | {s['bench']} | {s['batch']} | {num(s['ms_per_image'], 1)} | {num(s['gflop_per_s'], 1)} | "
              f"{num(s['fraction_of_matmul'])} | {num(s['peak_rss_mb'], 0)} |")
open(os.path.join(out, "results.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
EOF
echo "== done: $out/results.md"
