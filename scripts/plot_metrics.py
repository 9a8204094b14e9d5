#!/usr/bin/env python3
"""Plot a meap run's losses: RUN_DIR/metrics.jsonl -> RUN_DIR/loss.png.

Usage: scripts/plot_metrics.py RUN_DIR [--out PNG] [--title TEXT]

metrics.jsonl (written by `meap train`) holds one JSON object per line: train log lines
{"step", "loss", "lr", "grad_norm", "tokens_per_s", "tokens_seen", "elapsed_s"} and
validation lines {"step", "val_loss"}. The top panel shows train and validation loss
against the optimizer step, with tokens seen on a secondary axis; a second panel shows
the learning rate when the lines carry one.

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


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Plot train and validation loss of a meap run (RUN_DIR/metrics.jsonl).")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a `meap train` run.out_dir")
    parser.add_argument("--out", metavar="PNG", help="output image (default RUN_DIR/loss.png)")
    parser.add_argument("--title", help="plot title (default: the run directory's name)")
    args = parser.parse_args(argv)

    if not os.path.isdir(args.run_dir):
        fail(f"{args.run_dir} is not a directory")
    out = args.out or os.path.join(args.run_dir, "loss.png")
    title = args.title or os.path.basename(os.path.normpath(os.path.abspath(args.run_dir)))
    train, val = load_metrics(os.path.join(args.run_dir, "metrics.jsonl"))
    plot(train, val, out, title)
    last = max(train) if train else None
    summary = f"{len(train)} train points"
    if last is not None:
        summary += f" (last step {last}, loss {float(train[last]['loss']):.4f})"
    summary += f", {len(val)} val points"
    if val:
        summary += f" (last {val[max(val)]:.4f})"
    print(f"wrote {out}: {summary}")


if __name__ == "__main__":
    main()
