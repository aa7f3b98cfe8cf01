#!/usr/bin/env python3
"""Markdown table of PA-mIoU and per-class PA IoU from `lmae evaluate` outputs (metrics.json), one row per
(run, split, ratio, method): the tables of docs/quality.md.

    build/metrics-table.py LABEL=DIR [LABEL=DIR ...] [--methods LMAE,NearestKnown] [--ratios 0.5,0.6] [--confusions]

With --confusions: instead, per run, split, ratio and method, each class's recall and precision over the hidden pixels and
the two classes its hidden pixels are most often taken for (from confusion-matrices.json beside metrics.json).

DIR is an `lmae evaluate --out` folder (holds metrics.json) or a folder with eval-val/ and eval-test/ (as written by
build/reproduce-camvid.sh). LABEL names the run in the table. Standard library only.
"""
import argparse
import json
import os
import sys


def metrics_files(folder):
    direct = os.path.join(folder, "metrics.json")
    if os.path.exists(direct):
        return [direct]
    found = [os.path.join(folder, f"eval-{split}", "metrics.json") for split in ("val", "test")]
    found = [f for f in found if os.path.exists(f)]
    if not found:
        sys.exit(f"metrics-table.py: {folder} holds neither metrics.json nor eval-val/ or eval-test/")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="LABEL=DIR")
    parser.add_argument("--methods", default="LMAE,NearestKnown", help="methods to show (default LMAE,NearestKnown)")
    parser.add_argument("--ratios", default="0.5,0.6", help="mask ratios to show (default 0.5,0.6)")
    parser.add_argument("--confusions", action="store_true", help="recall, precision and top confusions per class instead")
    args = parser.parse_args()
    methods = args.methods.split(",")
    ratios = [float(r) for r in args.ratios.split(",")]
    rows, classes = [], None
    for run in args.runs:
        label, sep, folder = run.partition("=")
        if not sep:
            sys.exit(f"metrics-table.py: '{run}' is not LABEL=DIR")
        for path in metrics_files(folder):
            m = json.load(open(path))
            classes = classes or m["classes"]
            for r in m["results"]:
                if r["method"] in methods and r["ratio"] in ratios:
                    rows.append((m["data"]["split"], r["ratio"], methods.index(r["method"]), label, r))
    rows.sort(key=lambda x: (x[0] != "val", x[1], x[2]))
    if args.confusions:
        confusions(args.runs, methods, ratios, classes)
        return
    short = [c[:5] for c in classes]
    print("| split | ratio | run | method | PA-mIoU | PA pixel acc. | " + " | ".join(short) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(short))
    for split, ratio, _, label, r in rows:
        iou = r.get("pa_per_class_iou", {})
        cells = ["-" if iou.get(c) is None else f"{iou[c]:.1f}" for c in classes]
        print(f"| {split} | {ratio} | {label} | {r['method']} | {r['pa_miou']:.2f} | {r['pa_pixel_accuracy']:.2f} | " + " | ".join(cells) + " |")


def confusions(runs, methods, ratios, classes):
    print("| split | ratio | run | method | class | hidden pixels | recall | precision | most often taken for |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        label, _, folder = run.partition("=")
        for path in metrics_files(folder):
            split = json.load(open(path))["data"]["split"]
            matrices = os.path.join(os.path.dirname(path), "confusion-matrices.json")
            if not os.path.exists(matrices):
                sys.exit(f"metrics-table.py: {matrices} does not exist")
            for r in json.load(open(matrices))["results"]:
                if r["method"] not in methods or r["ratio"] not in ratios:
                    continue
                area = r["predict_area"]
                k, counts = area["classes"], area["counts"]
                m = counts if isinstance(counts[0], list) else [counts[i * k:(i + 1) * k] for i in range(k)]
                for i, name in enumerate(classes[:k]):
                    total, predicted = sum(m[i]), sum(m[j][i] for j in range(k))
                    recall = 100 * m[i][i] / total if total else float("nan")
                    precision = 100 * m[i][i] / predicted if predicted else float("nan")
                    top = sorted(((m[i][j], j) for j in range(k) if j != i), reverse=True)[:2]
                    taken = ", ".join(f"{classes[j]} {100 * n / total:.1f}%" for n, j in top if total and n)
                    print(f"| {split} | {r['ratio']} | {label} | {r['method']} | {name} | {total} | {recall:.1f} | {precision:.1f} | {taken} |")


if __name__ == "__main__":
    main()
