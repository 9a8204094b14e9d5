"""Trains meap's Llama in PyTorch on the batches a `meap train` run consumes: the outside
reference for meap's training curve (scripts/compare_with_torch.sh, docs/training.md).

usage: train_reference.py BATCHES.safetensors INIT_DIR --out LOSSES.json
                          [--device cpu|cuda] [--precision fp32|bf16|fp64] [--steps N]
                          [--state FILE [--save-every K]]

BATCHES.safetensors is `meap batches` output: inputs/targets/weights (S, GB, T) and the
run's effective config (metadata "config"). INIT_DIR is a meap checkpoint (`meap init`)
whose model.safetensors holds the fp32 weights the run starts from.

The training step is meap's (src/train/trainer.cpp), written again from its documented
semantics, with the model of llama_reference.py and torch autograd:
  - the global batch runs as GB / micro_batch_size micro-batches whose gradients add up;
    the loss is the weighted mean of per-token cross-entropy over the whole global batch,
    so each micro-batch's weighted loss sum is divided by the global batch's weight sum;
  - the global gradient norm (float64 sum of squares); above optim.grad_clip the gradients
    are scaled by grad_clip / norm;
  - AdamW (include/meap/backend/backend.hpp), 1-based step t:
        m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
        p -= lr (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd p)
    with wd = optim.weight_decay on every weight except the RMSNorm gains (*norm.weight);
  - lr: linear warmup over optim.warmup_steps, then cosine to optim.min_lr at
    train.max_steps (include/meap/train/lr_schedule.hpp).
Precision: fp32 (everything float32, as meap's CPU backend), bf16 (meap's mixed precision:
fp32 master weights and AdamW moments, bf16 working copy and activations, float32 weight
gradients accumulated over the micro-batches), or fp64 (an exact-arithmetic yardstick).

Writes LOSSES.json: {"losses": [...], "grad_norms": [...], "lrs": [...], ...}, one entry
per step, the losses as meap logs them. With --state FILE the master weights, AdamW moments
and the losses so far are saved there every K steps; a later call with the same arguments
continues from it (a long GPU comparison split over several time-limited calls).
"""
import argparse
import json
import math
import os
import pathlib
import sys
import time

import numpy as np
import torch
import yaml
from safetensors import safe_open
from safetensors.numpy import load_file

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import llama_reference  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp64": torch.float64, "bf16": torch.bfloat16}


def learning_rate(step, lr, min_lr, warmup, max_steps):
    """meap's schedule; step is 1-based."""
    if warmup > 0 and step <= warmup:
        return lr * step / warmup
    if max_steps <= warmup:
        return lr
    progress = min(max((step - warmup) / (max_steps - warmup), 0.0), 1.0)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def decays(name):
    """meap's rule: decoupled weight decay on every weight except the RMSNorm gains."""
    return not name.endswith("norm.weight")


def load_batches(path):
    with safe_open(path, framework="np") as f:
        meta = f.metadata() or {}
    if meta.get("format") != "meap-batches":
        raise SystemExit(f"{path} is not a `meap batches` file (metadata format="
                         f"{meta.get('format')!r})")
    tensors = load_file(path)
    if "segment_ids" in tensors:
        # Packed documents (meap batches --sft, or data.document_mask): attention would have to
        # stop at segment boundaries and RoPE read per-token positions, which this reference
        # does not do; training on the file anyway would compare different models.
        raise SystemExit(f"{path} holds packed documents (segment_ids, positions: "
                         f"kind={meta.get('kind')!r}), which this reference does not implement")
    return tensors, meta, yaml.safe_load(meta["config"])


def load_initial_weights(init_dir, model_cfg, device, master_dtype):
    path = pathlib.Path(init_dir) / "model.safetensors"
    if not path.exists():
        raise SystemExit(f"{init_dir} has no model.safetensors (expected `meap init` output)")
    weights = load_file(str(path))
    names = ["tok_embeddings.weight", "norm.weight"] + \
        ([] if model_cfg["tie_embeddings"] else ["output.weight"]) + \
        [f"layers.{i}.{n}" for i in range(model_cfg["n_layers"])
         for n in ("attention_norm.weight", "attention.wqkv.weight", "attention.wo.weight",
                   "ffn_norm.weight", "feed_forward.w_gate_up.weight",
                   "feed_forward.w_down.weight")]
    if sorted(names) != sorted(weights):
        raise SystemExit(f"{path}: tensors {sorted(set(weights) ^ set(names))} do not match the "
                         "config's model (tie_embeddings / n_layers)")
    return {n: torch.tensor(weights[n], dtype=master_dtype, device=device) for n in names}


class AdamW:
    """meap's AdamW (backend.hpp), element-wise in the master's dtype, in the CPU backend's
    operation order: constants rounded to that dtype, bias corrections as multipliers."""

    def __init__(self, params, betas, eps):
        self.m = {n: torch.zeros_like(p) for n, p in params.items()}
        self.v = {n: torch.zeros_like(p) for n, p in params.items()}
        self.b1, self.b2 = betas
        self.eps = eps

    @torch.no_grad()
    def step(self, name, param, grad, lr, weight_decay, t):
        dt = param.dtype
        cast = lambda x: torch.tensor(x, dtype=dt, device=param.device)  # noqa: E731
        b1, b2 = cast(self.b1), cast(self.b2)
        c1 = cast(1.0 / (1.0 - self.b1 ** t))
        c2 = cast(1.0 / (1.0 - self.b2 ** t))
        m, v = self.m[name], self.v[name]
        m.copy_(b1 * m + (1 - b1) * grad)
        v.copy_(b2 * v + (1 - b2) * grad * grad)
        update = (m * c1) / (torch.sqrt(v * c2) + cast(self.eps))
        param.sub_(cast(lr) * (update + cast(weight_decay) * param))


def save_state(path, step, master, opt, out):
    tmp = path + ".tmp"
    torch.save({"step": step, "master": master, "m": opt.m, "v": opt.v, "out": out}, tmp)
    os.replace(tmp, path)


def train(batches, cfg, init_dir, device, precision, steps, state_path=None, save_every=0):
    mc, oc, tc = cfg["model"], cfg["optim"], cfg["train"]
    inputs_all, targets_all, weights_all = (batches[k] for k in ("inputs", "targets", "weights"))
    available, gb, t = inputs_all.shape  # (S, GB, T)
    steps = steps or available
    if steps > available:
        raise SystemExit(f"--steps {steps} but the batches file holds {available}")
    micro = int(tc["micro_batch_size"])
    if gb != int(tc["global_batch_size"]) or gb % micro:
        raise SystemExit(f"batches of {gb} sequences do not fit train.global_batch_size="
                         f"{tc['global_batch_size']} / micro_batch_size={micro}")
    model_cfg = {k: mc[k] for k in ("dim", "n_layers", "n_heads", "n_kv_heads", "rope_theta",
                                    "norm_eps", "tie_embeddings")}

    act_dtype = DTYPES[precision]
    master_dtype = torch.float32 if precision == "bf16" else act_dtype
    master = load_initial_weights(init_dir, model_cfg, device, master_dtype)
    if precision == "bf16":
        # The working copy: the master rounded to bf16, held in float32 leaves so that the
        # casts inside the model give float32 weight gradients (meap's f32 gradient buffer).
        working = {n: p.to(torch.bfloat16).float().requires_grad_() for n, p in master.items()}
    else:
        working = master  # the parameters are their own master
        for p in working.values():
            p.requires_grad_()
    beta1, beta2 = (float(b) for b in oc["betas"])
    opt = AdamW(master, (beta1, beta2), float(oc["eps"]))
    clip = float(oc["grad_clip"])

    out = {"losses": [], "grad_norms": [], "lrs": [], "seconds": []}
    start = 1
    if state_path and os.path.exists(state_path):
        state = torch.load(state_path, map_location=device)
        with torch.no_grad():
            for name, p in master.items():
                p.copy_(state["master"][name])
                opt.m[name].copy_(state["m"][name])
                opt.v[name].copy_(state["v"][name])
                if precision == "bf16":
                    working[name].copy_(p.to(torch.bfloat16).float())
        out, start = state["out"], state["step"] + 1
        print(f"torch: continuing after step {state['step']} from {state_path}", flush=True)
    for step in range(start, steps + 1):
        started = time.time()
        inputs = torch.from_numpy(inputs_all[step - 1].astype(np.int64)).to(device)   # (GB, T)
        targets = torch.from_numpy(targets_all[step - 1].astype(np.int64)).to(device)  # (GB, T)
        weights = torch.from_numpy(weights_all[step - 1]).to(device)                   # (GB, T)
        batch_weight = float(weights.double().sum())  # of the whole global batch
        for p in working.values():
            p.grad = None
        loss_sum = 0.0
        for k in range(0, gb, micro):
            rows = slice(k, k + micro)
            logits = llama_reference.forward(working, model_cfg, inputs[rows], act_dtype)
            per_token = llama_reference.per_token_loss(logits, targets[rows], weights[rows])
            weighted = (per_token * weights[rows].reshape(-1).to(per_token.dtype)).sum()
            loss_sum += float(weighted.double())
            if batch_weight > 0:
                (weighted / batch_weight).backward()  # gradients add up over micro-batches
        loss = loss_sum / batch_weight if batch_weight > 0 else 0.0
        grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach()
                 for n, p in working.items()}
        grad_norm = math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads.values()))
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            raise SystemExit(f"step {step}: loss {loss}, gradient norm {grad_norm}")
        if clip > 0 and grad_norm > clip:
            factor = torch.tensor(clip / grad_norm, dtype=master_dtype, device=device)
            for g in grads.values():
                g.mul_(factor)
        lr = learning_rate(step, float(oc["lr"]), float(oc["min_lr"]), int(oc["warmup_steps"]),
                           int(tc["max_steps"]))
        for name, p in master.items():
            opt.step(name, p, grads[name], lr, float(oc["weight_decay"]) if decays(name) else 0.0,
                     step)
        if precision == "bf16":
            with torch.no_grad():
                for name, p in master.items():
                    working[name].copy_(p.to(torch.bfloat16).float())
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        out["losses"].append(loss)
        out["grad_norms"].append(grad_norm)
        out["lrs"].append(lr)
        out["seconds"].append(time.time() - started)
        print(f"torch step {step:>5}/{steps} | loss {loss:.6f} | lr {lr:.3e} | "
              f"grad norm {grad_norm:.4f} | {out['seconds'][-1]:.2f} s", flush=True)
        if state_path and save_every and step % save_every == 0 and step < steps:
            save_state(state_path, step, master, opt, out)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("batches", help="`meap batches` output")
    ap.add_argument("init_dir", help="the run's initial weights (`meap init` output)")
    ap.add_argument("--out", required=True, help="LOSSES.json to write")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    ap.add_argument("--precision", choices=sorted(DTYPES), default=None,
                    help="fp32 | bf16 | fp64 (default: bf16 on cuda, fp32 on cpu)")
    ap.add_argument("--steps", type=int, default=0, help="train on the first N batches only")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's)")
    ap.add_argument("--state", default=None,
                    help="save the training state here every --save-every steps, and continue "
                         "from it when it exists")
    ap.add_argument("--save-every", type=int, default=25)
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: this torch ({torch.__version__}) sees no GPU "
                         "(a CPU-only build, or no driver)")
    precision = args.precision or ("bf16" if args.device.startswith("cuda") else "fp32")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        # The reference must not round float32 GEMMs to TF32 behind our back.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    batches, _, cfg = load_batches(args.batches)
    result = train(batches, cfg, args.init_dir, args.device, precision, args.steps,
                   args.state, args.save_every)
    result.update({"device": args.device, "precision": precision,
                   "torch": torch.__version__, "batches": os.path.abspath(args.batches)})
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, args.out)
    finished = len(result["losses"]) == batches["inputs"].shape[0]
    if finished and args.state and os.path.exists(args.state):
        os.remove(args.state)  # every batch trained and the losses out: the state is only bulk


if __name__ == "__main__":
    main()
