"""meap's training curve against a PyTorch run of the same model, from the same initial
weights, on the same batches (docs/training.md, "Checking training against PyTorch").

usage: compare_with_torch.py CONFIG.yaml [section.key=value ...] --steps N
           [--tolerance X] [--device cpu|cuda] [--precision fp32|bf16]
           [--work DIR] [--resume] [--checkpoint-every K] [--meap PATH] [--python PATH]
           [--prepare-data]

Steps, each into --work DIR:
  1. meap init     CONFIG ... --out DIR/init               the weights the run starts from
  2. meap batches  CONFIG ... --steps N --out DIR/batches.safetensors
  3. meap train    CONFIG ... checkpoint.init_from=DIR/init log.interval=1, N steps
  4. tests/reference/train_reference.py on DIR/batches.safetensors from DIR/init
Then a table step | meap loss | torch loss | relative diff, the worst difference, and a
final JSON line; exit status 0 iff every step is within --tolerance (relative), 1 if not,
2 for a usage or set-up error.

--device cuda: meap trains with train.device=cuda and train.precision=bf16 (bf16 weights
and activations, fp32 master weights, f32 gradients), torch in the same mixed precision on
the GPU. --device cpu: both in fp32 on the CPU. --precision overrides that choice for both.
--resume continues an earlier call's work in DIR (same arguments): finished steps are kept
(each output is written atomically), `meap train --resume` continues from the run's latest
checkpoint and the torch reference from its saved state (both every --checkpoint-every
steps), so a comparison longer than one time-limited call completes over several.
--prepare-data: when CONFIG's data.train matches no shard, builds the default corpus
(scripts/default_corpus.sh) and runs `meap prepare --vocab-size model.vocab_size` into the
directory of data.tokenizer.
"""
import os as _os, sys as _sys  # noqa: E401
_sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))
import project_venv  # noqa: E402,F401  (re-runs this script in the project .venv)
import argparse
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(REPO, "tests", "reference", "train_reference.py")


class SetupError(Exception):
    pass


def run(cmd, log_path=None, env=None):
    """Runs cmd; its output goes to log_path (and, on failure, the tail to stderr)."""
    cmd = [str(c) for c in cmd]
    print("+ " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
    started = time.time()
    with open(log_path or os.devnull, "w") as log:
        p = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if p.returncode != 0:
        tail = open(log_path).read()[-4000:] if log_path else ""
        raise SetupError(f"command failed with status {p.returncode}: {' '.join(cmd)}\n{tail}")
    elapsed = time.time() - started
    print(f"  done in {elapsed:.1f} s" + (f" (log: {log_path})" if log_path else ""),
          file=sys.stderr, flush=True)
    return elapsed


def effective_config(work):
    """The effective config as meap sees it (data paths, vocab size), from the manifest
    `meap init` wrote (the run's config.yaml appears only once `meap train` starts)."""
    import yaml
    manifest = json.load(open(os.path.join(work, "init", "manifest.json")))
    return yaml.safe_load(manifest["config"])


def prepare_data(meap, cfg, work):
    """Default corpus -> tokenizer + shards where the config expects them."""
    data = cfg["data"]
    out_dir = os.path.dirname(data["tokenizer"]) or "."
    expected = os.path.join(out_dir, "train-*.bin")
    if os.path.normpath(data["train"]) != os.path.normpath(expected):
        raise SetupError(f"--prepare-data writes {expected}, but data.train is {data['train']}")
    corpus = os.path.join(work, "corpus")
    run(["bash", os.path.join(REPO, "scripts", "default_corpus.sh"), corpus],
        os.path.join(work, "corpus.log"))
    run([meap, "prepare", "--out", out_dir, "--vocab-size", cfg["model"]["vocab_size"], corpus],
        os.path.join(work, "prepare.log"))


def meap_losses(run_dir, steps):
    """{step: loss} from the run's metrics.jsonl (log.interval=1: every step)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    losses = {}
    if os.path.exists(path):
        for line in open(path):
            rec = json.loads(line)
            if "loss" in rec:
                losses[rec["step"]] = rec["loss"]
    return [losses.get(s) for s in range(1, steps + 1)]


def main():
    ap = argparse.ArgumentParser(
        usage=__doc__.split("\n\n")[1].replace("usage: ", ""),
        description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("overrides", nargs="*", help="section.key=value, as for meap train")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--tolerance", type=float, default=0.02,
                    help="largest relative loss difference |meap - torch| / |torch| allowed at "
                         "any step (default 0.02)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                    help="default: bf16 on cuda, fp32 on cpu")
    ap.add_argument("--work", default=None,
                    help="working directory (default runs/compare-torch-DEVICE)")
    ap.add_argument("--meap", default=os.environ.get("MEAP", os.path.join(REPO, "build", "meap")),
                    help="the meap binary (default $MEAP, else build/meap)")
    ap.add_argument("--python", default=None,
                    help="python with torch for the reference (default: .venv/bin/python3 if "
                         "present, else this interpreter)")
    ap.add_argument("--torch-threads", type=int, default=0)
    ap.add_argument("--resume", action="store_true",
                    help="continue an earlier call's work in --work")
    ap.add_argument("--checkpoint-every", type=int, default=25,
                    help="meap checkpoints and torch saves its state every K steps (default 25)")
    ap.add_argument("--prepare-data", action="store_true",
                    help="prepare the default corpus when data.train matches no shard")
    args = ap.parse_intermixed_args()  # overrides may come before or after the options
    if args.steps < 1 or args.checkpoint_every < 1 or not args.tolerance > 0:
        ap.error("--steps and --checkpoint-every must be >= 1, --tolerance > 0")
    for o in args.overrides:
        if "=" not in o or o.startswith("-"):
            ap.error(f"'{o}' is not a section.key=value override")

    precision = args.precision or ("bf16" if args.device == "cuda" else "fp32")
    work = os.path.abspath(args.work or os.path.join("runs", f"compare-torch-{args.device}"))
    python = args.python or next(
        (p for p in [os.path.join(REPO, ".venv", "bin", "python3")] if os.path.exists(p)),
        sys.executable)
    meap = args.meap
    if not os.access(meap, os.X_OK):
        raise SetupError(f"no meap binary at {meap}: build it (cmake --build build) or pass "
                         "--meap PATH / set MEAP")
    # Before any long step: the reference's python must have torch (with a GPU for cuda).
    probe = ("import sys, torch, safetensors, yaml; "
             f"sys.exit(3 if {args.device == 'cuda'} and not torch.cuda.is_available() else 0)")
    p = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    if p.returncode != 0:
        raise SetupError(f"{python} cannot run the reference: " + (
            "its torch sees no GPU (a CPU-only build, or no driver); pass --python with a "
            "CUDA build of torch" if p.returncode == 3 else
            f"torch, safetensors and PyYAML are needed\n{p.stderr.strip()}"))
    # A fresh comparison replaces an earlier one's directory, never anything else.
    marker = os.path.join(work, ".compare_with_torch")
    if not args.resume and os.path.exists(work):
        if os.listdir(work) and not os.path.exists(marker):
            raise SetupError(f"--work {work} exists and is not a compare_with_torch directory; "
                             "choose another")
        shutil.rmtree(work)
    os.makedirs(work, exist_ok=True)
    open(marker, "w").close()

    n = args.steps
    # Every meap command sees the same config: the run's length (the lr schedule ends at N)
    # and its device and precision. The training run then also starts from DIR/init's
    # weights, logs every step, skips validation and checkpoints every --checkpoint-every
    # steps (for --resume).
    common = list(args.overrides) + [f"train.max_steps={n}", f"train.device={args.device}",
                                     f"train.precision={precision}"]
    init_dir = os.path.join(work, "init")
    batches = os.path.join(work, "batches.safetensors")
    run_dir = os.path.join(work, "meap-run")
    torch_json = os.path.join(work, "torch.json")
    timings = {}

    if not (args.resume and os.path.exists(os.path.join(init_dir, "manifest.json"))):
        timings["init_s"] = run([meap, "init", args.config, *common, "--out", init_dir,
                                 "--force"], os.path.join(work, "init.log"))
    cfg = effective_config(work)
    if not glob.glob(cfg["data"]["train"]):
        if not args.prepare_data:
            raise SetupError(
                f"data.train '{cfg['data']['train']}' matches no shard. Prepare the data first "
                "(docs/data.md: `meap prepare --out DIR --vocab-size "
                f"{cfg['model']['vocab_size']} CORPUS...`), point data.train / data.val / "
                "data.tokenizer at it, or pass --prepare-data for the default corpus")
        prepare_data(meap, cfg, work)
        # The init copied no tokenizer when there was none yet: write it again.
        timings["init_s"] = run([meap, "init", args.config, *common, "--out", init_dir,
                                 "--force"], os.path.join(work, "init.log"))

    if not (args.resume and os.path.exists(batches)):
        timings["batches_s"] = run([meap, "batches", args.config, *common, "--steps", n,
                                    "--out", batches], os.path.join(work, "batches.log"))

    if not all(x is not None for x in meap_losses(run_dir, n)):
        env = dict(os.environ)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared machines: see scripts/train.sh
        timings["meap_train_s"] = run(
            [meap, "train", args.config, *common, f"checkpoint.init_from={init_dir}",
             "log.interval=1", f"run.out_dir={run_dir}",
             f"checkpoint.interval={args.checkpoint_every}", 'data.val=""',
             f"run.name=compare-torch-{args.device}", "--resume"],
            os.path.join(work, "meap-train.log"), env)

    if not os.path.exists(torch_json):
        cmd = [python, REFERENCE, batches, init_dir, "--out", torch_json,
               "--device", args.device, "--precision", precision,
               "--state", os.path.join(work, "torch-state.pt"),
               "--save-every", args.checkpoint_every]
        if args.torch_threads:
            cmd += ["--threads", args.torch_threads]
        timings["torch_train_s"] = run(cmd, os.path.join(work, "torch-train.log"))

    ours = meap_losses(run_dir, n)
    theirs = json.load(open(torch_json))["losses"]
    if any(x is None for x in ours) or len(theirs) < n:
        raise SetupError(f"incomplete losses: meap logged {sum(x is not None for x in ours)} of "
                         f"{n} steps, torch {len(theirs)}")

    print(f"{'step':>6} | {'meap loss':>12} | {'torch loss':>12} | {'rel diff':>10}")
    print("-" * 50)
    diffs = []
    for step, (a, b) in enumerate(zip(ours, theirs[:n]), start=1):
        rel = abs(a - b) / max(abs(b), 1e-12)
        diffs.append(rel)
        flag = "" if rel <= args.tolerance else "  <-- over tolerance"
        print(f"{step:>6} | {a:>12.6f} | {b:>12.6f} | {rel:>10.3e}{flag}")
    worst = max(range(n), key=lambda i: diffs[i])
    passed = all(d <= args.tolerance for d in diffs)
    print("-" * 50)
    print(f"worst relative difference {diffs[worst]:.3e} at step {worst + 1} "
          f"(tolerance {args.tolerance:g}): {'PASS' if passed else 'FAIL'}")
    summary = {"passed": passed, "steps": n, "tolerance": args.tolerance,
               "worst_rel_diff": diffs[worst], "worst_step": worst + 1,
               "device": args.device, "precision": precision, "config": args.config,
               "overrides": args.overrides, "work": work, "timings_s": timings,
               "meap_losses": ours, "torch_losses": theirs[:n], "rel_diffs": diffs}
    with open(os.path.join(work, "compare.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary))
    return 0 if passed else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SetupError as e:
        print(f"compare_with_torch: error: {e}", file=sys.stderr)
        sys.exit(2)
