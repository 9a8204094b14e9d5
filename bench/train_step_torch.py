"""The PyTorch side of bench/train_step_cpu.sh: the same fp32 training step as
bench/train_step_cpu (zero grads, forward, backward, AdamW) on the same weights and batch
(written by `train_step_cpu SHAPE --dump DIR`), written the way a PyTorch user would:
F.rms_norm, rotary embedding, F.scaled_dot_product_attention (causal, GQA), SwiGLU,
F.cross_entropy, torch.optim.AdamW (fused, foreach or torch's default choice). Older
torch (Debian's 1.13, the fallback) gets plain equivalents of the ops it lacks.

Usage: train_step_torch.py DIR [--steps 5] [--warmup 2] [--threads 2] [--adamw default|foreach|fused]
Prints one JSON line: median step time (wall and process CPU), tokens/s, peak RSS, first
and last loss.
"""
import argparse
import json
import math
import resource
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F


def rms_norm(x, weight, eps):
    if hasattr(F, "rms_norm"):  # torch >= 2.4
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def causal_attention(q, k, v):
    """q (B, Hq, T, D), k and v (B, Hkv, T, D), causal, grouped-query."""
    try:  # torch >= 2.5
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    except (TypeError, AttributeError):
        pass
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    t = q.shape[2]  # torch 1.13 (Debian's, the fallback): scores in memory
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
    return s.softmax(-1) @ v


def load_safetensors(path):
    """meap's weights file: 8-byte header length, JSON header, raw little-endian F32 data."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        begin, end = info["data_offsets"]
        arr = np.frombuffer(raw, dtype="<f4", count=(end - begin) // 4, offset=8 + n + begin)
        out[name] = torch.from_numpy(arr.copy()).reshape(info["shape"])
    return out


class Llama(torch.nn.Module):
    def __init__(self, cfg, weights):
        super().__init__()
        self.cfg = cfg
        self.params = torch.nn.ParameterDict(
            {k.replace(".", "__"): torch.nn.Parameter(v) for k, v in weights.items()})
        d = cfg["dim"] // cfg["n_heads"]
        t = cfg["seq_len"]
        inv = cfg["rope_theta"] ** (-torch.arange(0, d // 2, dtype=torch.float64) * 2.0 / d)
        ang = torch.arange(t, dtype=torch.float64)[:, None] * inv[None, :]
        self.register_buffer("cos", torch.cat([ang.cos(), ang.cos()], -1).float()[None, None])
        self.register_buffer("sin", torch.cat([ang.sin(), ang.sin()], -1).float()[None, None])

    def p(self, name):
        return self.params[name.replace(".", "__")]

    def rope(self, x):  # (B, H, T, D), pairs (i, i + D/2)
        x1, x2 = x.chunk(2, dim=-1)
        return x * self.cos + torch.cat([-x2, x1], -1) * self.sin

    def forward(self, inputs, targets):
        c = self.cfg
        b, t = inputs.shape
        hq, hkv, dim = c["n_heads"], c["n_kv_heads"], c["dim"]
        d = dim // hq
        eps = c["norm_eps"]
        x = F.embedding(inputs, self.p("tok_embeddings.weight"))
        for i in range(c["n_layers"]):
            l = f"layers.{i}."
            h = rms_norm(x, self.p(l + "attention_norm.weight"), eps)
            qkv = F.linear(h, self.p(l + "attention.wqkv.weight")).view(b, t, hq + 2 * hkv, d)
            q, k, v = qkv.split([hq, hkv, hkv], dim=2)
            q, k, v = (y.transpose(1, 2) for y in (q, k, v))  # (B, H, T, D)
            q, k = self.rope(q), self.rope(k)
            att = causal_attention(q, k, v)
            x = x + F.linear(att.transpose(1, 2).reshape(b, t, hq * d),
                             self.p(l + "attention.wo.weight"))
            h = rms_norm(x, self.p(l + "ffn_norm.weight"), eps)
            gate, up = F.linear(h, self.p(l + "feed_forward.w_gate_up.weight")).chunk(2, -1)
            x = x + F.linear(F.silu(gate) * up, self.p(l + "feed_forward.w_down.weight"))
        x = rms_norm(x, self.p("norm.weight"), eps)
        logits = F.linear(x, self.p("tok_embeddings.weight"))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--adamw", choices=["default", "foreach", "fused"], default="default")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(f"{a.dir}/config.json"))
    model = Llama(cfg, load_safetensors(f"{a.dir}/weights.safetensors"))
    b, t = cfg["batch"], cfg["seq_len"]
    ids = torch.from_numpy(np.fromfile(f"{a.dir}/batch.bin", dtype="<i4").astype(np.int64))
    inputs, targets = ids[: b * t].view(b, t), ids[b * t:].view(b, t)
    kwargs = {} if a.adamw == "default" else {a.adamw: True}
    if a.adamw == "fused" and tuple(int(x) for x in torch.__version__.split(".")[:2]) < (2, 4):
        kwargs = {}  # no fused CPU AdamW before torch 2.4
        a.adamw = "default"
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], betas=tuple(cfg["betas"]),
                            eps=cfg["eps"], weight_decay=cfg["weight_decay"], **kwargs)
    times, cpu_times, losses = [], [], []
    for i in range(a.warmup + a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = model(inputs, targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    step = statistics.median(times)
    print(json.dumps({
        "impl": "torch", "torch": torch.__version__, "shape": cfg["shape"],
        "threads": torch.get_num_threads(), "adamw": a.adamw, "steps": a.steps,
        "step_ms_median": round(step * 1e3, 3), "step_ms_min": round(min(times) * 1e3, 3),
        "tok_s": round(b * t / step, 1),
        "cpu_ms_median": round(statistics.median(cpu_times) * 1e3, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loss_first": round(losses[0], 6), "loss_last": round(losses[-1], 6)}))


if __name__ == "__main__":
    main()
