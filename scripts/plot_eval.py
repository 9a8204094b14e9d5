#!/usr/bin/env python3
"""Plot `meap eval` results, several checkpoints side by side.

Usage: scripts/plot_eval.py RESULTS.json [RESULTS.json ...] [--out PNG] [--names A,B,...]
       [--metric accuracy|greedy_em]

Draws, for the tasks the files hold: one NIAH heatmap per file (needle depth x context
length, accuracy by log-likelihood rank, or greedy exact match with --metric greedy_em), MDQA
accuracy by gold-document position (one line per file, chance dashed), and the attention
statistics (change of the attention masked positions receive, change of the variance over
unmasked positions, needle share vs uniform) as grouped bars. Default output: eval.png.

Needs matplotlib (Debian's python3-matplotlib): run it with /usr/bin/python3 or the .venv.
"""

import argparse
import json
import os
import sys


def fail(message, code=1):
    print(f"plot_eval.py: error: {message}", file=sys.stderr)
    sys.exit(code)


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read {path} ({e})")
    if results.get("schema") != "meap-eval/1":
        fail(f"{path} is not a `meap eval` results file (schema {results.get('schema')!r})")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description="Plot meap eval results side by side.")
    parser.add_argument("results", nargs="+", metavar="RESULTS.json")
    parser.add_argument("--out", default="eval.png", help="output image (default eval.png)")
    parser.add_argument("--names", help="comma-separated labels (default: run name and step)")
    parser.add_argument("--metric", choices=["accuracy", "greedy_em"], default="accuracy")
    args = parser.parse_args(argv)

    docs = [load(p) for p in args.results]
    names = (args.names.split(",") if args.names else
             [f"{d.get('run', '?')} @{d.get('step', '?')}" for d in docs])
    if len(names) != len(docs):
        fail(f"--names gives {len(names)} labels for {len(docs)} files")
    try:
        import matplotlib
    except ImportError:
        fail("matplotlib is missing: install python3-matplotlib and run this with "
             f"/usr/bin/python3 (this is {sys.executable})", code=2)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_niah = [i for i, d in enumerate(docs) if "niah" in d["tasks"]]
    with_mdqa = [i for i, d in enumerate(docs) if "mdqa" in d["tasks"]]
    with_attn = [i for i, d in enumerate(docs) if "attn" in d["tasks"]]
    if not (with_niah or with_mdqa or with_attn):
        fail("none of the files holds niah, mdqa or attn results")
    top = len(with_niah)
    bottom = int(bool(with_mdqa)) + int(bool(with_attn))
    cols = max(top, bottom, 1)
    rows = int(top > 0) + int(bottom > 0)
    fig = plt.figure(figsize=(4.2 * cols, 3.8 * rows))
    grid = fig.add_gridspec(rows, cols)
    row = 0
    summary = []
    if top:
        for k, i in enumerate(with_niah):
            niah = docs[i]["tasks"]["niah"]
            lengths, depths = niah["lengths"], niah["depths"]
            cell = {(c["length"], c["depth"]): c[args.metric] for c in niah["cells"]}
            grid_values = [[cell.get((l, d), float("nan")) for l in lengths] for d in depths]
            ax = fig.add_subplot(grid[row, k])
            im = ax.imshow(grid_values, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            ax.set_xticks(range(len(lengths)), [str(l) for l in lengths])
            ax.set_yticks(range(len(depths)), [f"{d:.2f}" for d in depths])
            ax.set_xlabel("context length (tokens)")
            ax.set_ylabel("needle depth")
            ax.set_title(f"NIAH {args.metric}: {names[i]}\n(overall "
                         f"{niah['overall'][args.metric]:.2f}, chance {niah['overall']['chance']:.2f})",
                         fontsize=9)
            for y, vals in enumerate(grid_values):
                for x, v in enumerate(vals):
                    ax.text(x, y, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if v < 0.6 else "black")
            fig.colorbar(im, ax=ax, fraction=0.046)
            summary.append(f"niah {names[i]}: {args.metric} {niah['overall'][args.metric]:.3f}")
        row += 1
    col = 0
    if with_mdqa:
        ax = fig.add_subplot(grid[row, col])
        for i in with_mdqa:
            m = docs[i]["tasks"]["mdqa"]
            pos = [c["position"] for c in m["by_position"]]
            ax.plot(pos, [c[args.metric] for c in m["by_position"]], marker="o", label=names[i])
            ax.axhline(m["overall"]["chance"], linestyle="--", color="gray", linewidth=0.8)
            summary.append(f"mdqa {names[i]}: {args.metric} {m['overall'][args.metric]:.3f}")
        ax.set_ylim(0, 1)
        ax.set_xlabel("position of the gold document")
        ax.set_ylabel(args.metric)
        ax.set_title("MDQA by gold position (dashed: chance)", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        col += 1
    if with_attn:
        ax = fig.add_subplot(grid[row, col])
        labels = ["masked pos.\nreceived chg.", "variance\nchange", "needle\nshare", "uniform\nneedle share"]
        width = 0.8 / len(with_attn)
        for k, i in enumerate(with_attn):
            o = docs[i]["tasks"]["attn"]["overall"]
            vals = [100 * o["received_change"], 100 * o["variance_change"],
                    100 * o.get("span_share", 0), 100 * o.get("span_share_uniform", 0)]
            ax.bar([x + k * width for x in range(len(labels))], vals, width, label=names[i])
            summary.append(f"attn {names[i]}: received {100 * o['received_change']:+.1f}%, "
                           f"variance {100 * o['variance_change']:+.1f}%")
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(labels))], labels, fontsize=8)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_ylabel("%")
        ax.set_title("attention (mean over layers)", fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(directory):
        fail(f"cannot write {args.out}: {directory} is not a directory")
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}: {len(docs)} result file(s)")
    for line in summary:
        print("  " + line)


if __name__ == "__main__":
    main()
