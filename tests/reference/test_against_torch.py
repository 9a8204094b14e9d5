"""ctest: meap's CPU forward and gradients against PyTorch autograd on the same weights.

Usage: test_against_torch.py MEAP_REFERENCE_DUMP WORK_DIR
Runs the C++ dumper (tied and untied head), reads its safetensors files with the official
`safetensors` package, recomputes logits, loss and every parameter gradient in float64 with
torch autograd, and requires normwise relative error <= 1e-5 per tensor.
"""
import json
import pathlib
import subprocess
import sys

import numpy as np
import torch
from safetensors.numpy import load_file

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import llama_reference  # noqa: E402

TOLERANCE = 1e-5


def relative_error(ours, ref):
    ours = torch.as_tensor(ours, dtype=torch.float64)
    return float((ours - ref).norm() / ref.norm().clamp_min(1e-300))


def check(dumper, work, head):
    out = pathlib.Path(work) / head
    subprocess.run([dumper, str(out), head], check=True)
    cfg = json.loads((out / "config.json").read_text())
    weights = load_file(str(out / "weights.safetensors"))
    batch = load_file(str(out / "batch.safetensors"))
    ours = load_file(str(out / "ours.safetensors"))

    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
              for k, v in weights.items()}
    inputs = torch.tensor(batch["inputs"].astype(np.int64))
    targets = torch.tensor(batch["targets"].astype(np.int64))
    loss_weights = torch.tensor(batch["weights"], dtype=torch.float64)

    logits = llama_reference.forward(params, cfg, inputs)
    loss = llama_reference.weighted_loss(logits, targets, loss_weights)
    loss.backward()

    failures = []
    results = [("logits", relative_error(ours["logits"], logits.detach())),
               ("loss", relative_error(ours["loss"], loss.detach().reshape(1)))]
    for name, p in sorted(params.items()):
        results.append(("grad." + name, relative_error(ours["grad." + name], p.grad)))
    for name, err in results:
        print(f"  [{head}] {name:48s} relative error {err:.3g}")
        if not err <= TOLERANCE:
            failures.append(f"{head} {name}: {err:.3g} > {TOLERANCE}")
    return failures


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    dumper, work = sys.argv[1], sys.argv[2]
    failures = check(dumper, work, "untied") + check(dumper, work, "tied")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("torch reference: logits, loss and all gradients agree (<= 1e-5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
