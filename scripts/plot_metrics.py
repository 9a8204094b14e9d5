#!/usr/bin/env python3
"""Plot meap runs' losses: RUN_DIR/metrics.jsonl -> RUN_DIR/loss.png, or several runs side by
side on one figure with a final table.

Usage: scripts/plot_metrics.py RUN_DIR [--out PNG] [--title TEXT]
       scripts/plot_metrics.py RUN_A RUN_B ... [--out PNG] [--eval RESULTS.json ...]

metrics.jsonl (written by `meap train`) holds one JSON object per line: train log lines
{"step", "loss", "lr", "grad_norm", "tokens_per_s", "tokens_seen", "elapsed_s"} and
validation lines {"step", "val_loss"}. The top panel shows train and validation loss
against the optimizer step, with tokens seen on a secondary axis; a second panel shows
the learning rate when the lines carry one.

With several runs, one figure (default runs.png in the current directory) holds every run's
train and validation curves, and a table on stdout gives each run's mask ratio, last step,
tokens seen, final train loss and final val_loss, plus the numbers of `meap eval` results
(--eval FILE..., matched to a run by the checkpoint path inside it; RUN_DIR/eval.json is
read when present). A MEAP run's train loss is measured on masked inputs and is not
comparable with an NTP run's: compare val_loss (unmasked) and the evaluations.

Needs matplotlib: Debian's python3-matplotlib (scripts/install_deps.sh installs it). The
script re-runs itself in the project's .venv (scripts/project_venv.py), which sees it, so any
python3 on PATH may start it.
"""

import os as _os, sys as _sys  # noqa: E401
_sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))
import project_venv  # noqa: E402,F401  (re-runs this script in the project .venv)
import argparse
import json
import os
import re
import sys


def fail(message, code=1):
    print(f"plot_metrics.py: error: {message}", file=sys.stderr)
    sys.exit(code)


def load_metrics(path):
    """Returns ({step: train record}, {step: val_loss}).

    A resumed run appends the steps after its checkpoint again, so the last record of a
    step wins: it belongs to the run that carried on. A torn last line (a run killed
    mid-write) is skipped with a warning rather than aborting the plot.
    """
    if not os.path.exists(path):
        fail(f"{path} does not exist (is this a `meap train` run directory?)")
    train, val = {}, {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
                step = int(record["step"])
            except (ValueError, KeyError, TypeError) as e:
                print(f"plot_metrics.py: warning: {path}:{number} skipped ({e})", file=sys.stderr)
                continue
            if "loss" in record:
                train[step] = record
            if "val_loss" in record:
                val[step] = float(record["val_loss"])
    if not train and not val:
        fail(f"{path} has no loss records (no line with \"loss\" or \"val_loss\")")
    return train, val


def import_pyplot():
    try:
        import matplotlib
    except ImportError:
        fail("matplotlib is missing: install Debian's python3-matplotlib "
             "(apt-get install python3-matplotlib, or scripts/install_deps.sh) and run this "
             f"script with /usr/bin/python3 (this is {sys.executable})", code=2)
    matplotlib.use("Agg")  # files only: works without a display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter
    return plt, EngFormatter


def plot(train, val, out, title):
    plt, EngFormatter = import_pyplot()
    steps = sorted(train)
    lr_steps = [s for s in steps if "lr" in train[s]]
    panels = 2 if lr_steps else 1
    fig, axes = plt.subplots(panels, 1, figsize=(8, 6 if panels == 2 else 4.5), sharex=True,
                             squeeze=False, gridspec_kw={"height_ratios": [3, 1][:panels]})
    ax = axes[0][0]
    if steps:
        ax.plot(steps, [train[s]["loss"] for s in steps], color="tab:blue", linewidth=1.2,
                label="train loss")
    if val:
        val_steps = sorted(val)
        ax.plot(val_steps, [val[s] for s in val_steps], color="tab:orange", marker="o",
                markersize=4, linewidth=1.5, label="val loss")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title)

    # Tokens seen grow by global_batch_size * seq_len per step, so a linear secondary axis
    # scaled by the last record's ratio labels the same positions exactly.
    with_tokens = [s for s in steps if s > 0 and "tokens_seen" in train[s]]
    if with_tokens:
        last = with_tokens[-1]
        per_step = float(train[last]["tokens_seen"]) / last
        if per_step > 0:
            top = ax.secondary_xaxis("top", functions=(lambda s: s * per_step,
                                                        lambda t: t / per_step))
            top.set_xlabel("tokens seen")
            top.xaxis.set_major_formatter(EngFormatter())

    if lr_steps:
        lr_ax = axes[1][0]
        lr_ax.plot(lr_steps, [train[s]["lr"] for s in lr_steps], color="tab:green", linewidth=1.2)
        lr_ax.set_ylabel("learning rate")
        lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        lr_ax.grid(True, alpha=0.3)
    axes[-1][0].set_xlabel("step")

    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        fail(f"cannot write {out}: {directory} is not a directory")
    fig.savefig(out, dpi=120)
    plt.close(fig)


def run_mask_ratio(run_dir):
    """data.meap.mask_ratio from RUN_DIR/config.yaml (the effective config meap train saves;
    mask_ratio is the only key of that name); None when it cannot be read."""
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        match = re.search(r"\bmask_ratio:\s*([-+0-9.eE]+)", f.read())
    try:
        return float(match.group(1)) if match else None
    except ValueError:
        return None


def load_eval_results(paths, run_dirs):
    """{run index: results} for `meap eval` result files whose checkpoint lies in a run."""
    found = {}
    candidates = list(paths)
    for run_dir in run_dirs:
        default = os.path.join(run_dir, "eval.json")
        if os.path.exists(default) and default not in candidates:
            candidates.append(default)
    for path in candidates:
        try:
            with open(path, encoding="utf-8") as f:
                results = json.load(f)
            checkpoint = os.path.realpath(results["checkpoint"])
        except (OSError, ValueError, KeyError) as e:
            fail(f"{path} is not a `meap eval` results file ({e})")
        for i, run_dir in enumerate(run_dirs):
            root = os.path.realpath(run_dir) + os.sep
            if checkpoint.startswith(root):
                found[i] = results
                break
        else:
            print(f"plot_metrics.py: warning: {path}: checkpoint {checkpoint} is in none of the "
                  "runs", file=sys.stderr)
    return found


def eval_columns(results):
    """The headline numbers of a results document, as (name, text) pairs."""
    tasks = results.get("tasks", {})
    cols = [("eval step", str(results.get("step", "?")))]
    if "ppl" in tasks:
        cols.append(("ppl bpb", f"{tasks['ppl']['bits_per_byte']:.4f}"))
    if "niah" in tasks:
        o = tasks["niah"]["overall"]
        cols.append(("niah acc/greedy", f"{o['accuracy']:.3f}/{o['greedy_em']:.3f}"))
    if "mdqa" in tasks:
        o = tasks["mdqa"]["overall"]
        cols.append(("mdqa acc/greedy", f"{o['accuracy']:.3f}/{o['greedy_em']:.3f}"))
    if "attn" in tasks:
        cols.append(("attn recv chg", f"{100 * tasks['attn']['overall']['received_change']:+.1f}%"))
    return cols


def plot_several(runs, out, title):
    plt, EngFormatter = import_pyplot()
    fig, ax = plt.subplots(figsize=(9, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, train, val, ratio) in enumerate(runs):
        color = colors[i % len(colors)]
        steps = sorted(train)
        masked = ratio is not None and ratio > 0
        kind = f"MEAP P={ratio:g}" if masked else ("NTP" if ratio == 0 else "mask ratio ?")
        if steps:
            ax.plot(steps, [train[s]["loss"] for s in steps], color=color, linewidth=1,
                    alpha=0.6, linestyle="--" if masked else "-",
                    label=f"{name} train ({kind}{', masked inputs' if masked else ''})")
        if val:
            vs = sorted(val)
            ax.plot(vs, [val[s] for s in vs], color=color, marker="o", markersize=4,
                    linewidth=1.8, label=f"{name} val")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title + "\n(MEAP train loss is on masked inputs: compare val loss)",
                 fontsize=10)
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        fail(f"cannot write {out}: {directory} is not a directory")
    fig.savefig(out, dpi=120)
    plt.close(fig)


def print_table(runs, evals):
    eval_names = []
    for results in evals.values():
        for name, _ in eval_columns(results):
            if name not in eval_names:
                eval_names.append(name)
    header = ["run", "mask", "step", "tokens", "train loss", "val_loss"] + eval_names
    rows = []
    for i, (name, train, val, ratio) in enumerate(runs):
        last = max(train) if train else None
        tokens = train[last].get("tokens_seen") if last is not None else None
        cols = dict(eval_columns(evals[i])) if i in evals else {}
        rows.append([name,
                     "?" if ratio is None else f"{ratio:g}",
                     "-" if last is None else str(last),
                     "-" if tokens is None else str(tokens),
                     "-" if last is None else f"{float(train[last]['loss']):.4f}"
                     + ("*" if ratio else ""),
                     f"{val[max(val)]:.4f}" if val else "-"]
                    + [cols.get(n, "-") for n in eval_names])
    widths = [max(len(r[c]) for r in rows + [header]) for c in range(len(header))]
    for r in [header] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    if any(ratio for _, _, _, ratio in runs):
        print("* train loss on masked inputs (MEAP): not comparable with NTP's; compare val_loss "
              "and the evaluations.")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Plot train and validation loss of meap runs (RUN_DIR/metrics.jsonl); "
                    "several runs go on one figure, with a table of their final numbers.")
    parser.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="`meap train` run.out_dir")
    parser.add_argument("--out", metavar="PNG",
                        help="output image (default RUN_DIR/loss.png for one run, runs.png "
                             "for several)")
    parser.add_argument("--title", help="plot title (default: the run directories' names)")
    parser.add_argument("--eval", metavar="RESULTS", nargs="*", default=[],
                        help="`meap eval --out` files to add to the table")
    args = parser.parse_args(argv)

    for run_dir in args.run_dirs:
        if not os.path.isdir(run_dir):
            fail(f"{run_dir} is not a directory")
    names = [os.path.basename(os.path.normpath(os.path.abspath(d))) for d in args.run_dirs]
    if len(args.run_dirs) == 1 and not args.eval:
        run_dir = args.run_dirs[0]
        out = args.out or os.path.join(run_dir, "loss.png")
        train, val = load_metrics(os.path.join(run_dir, "metrics.jsonl"))
        plot(train, val, out, args.title or names[0])
        last = max(train) if train else None
        summary = f"{len(train)} train points"
        if last is not None:
            summary += f" (last step {last}, loss {float(train[last]['loss']):.4f})"
        summary += f", {len(val)} val points"
        if val:
            summary += f" (last {val[max(val)]:.4f})"
        print(f"wrote {out}: {summary}")
        return

    runs = []
    for name, run_dir in zip(names, args.run_dirs):
        train, val = load_metrics(os.path.join(run_dir, "metrics.jsonl"))
        runs.append((name, train, val, run_mask_ratio(run_dir)))
    evals = load_eval_results(args.eval, args.run_dirs)
    out = args.out or "runs.png"
    plot_several(runs, out, args.title or " vs ".join(names))
    print(f"wrote {out}: {len(runs)} runs")
    print_table(runs, evals)


if __name__ == "__main__":
    main()
