"""An independent PyTorch implementation of meap's Llama, used as an outside oracle.

Written from the architecture (RMSNorm, RoPE with the Hugging Face rotate-half
convention, grouped-query causal attention, SwiGLU) with torch autograd for the
gradients -- it shares no code with meap's explicit backward.
Tensor names are meap's own (see include/meap/llama.hpp).
"""
import math

import torch


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate(x, theta):
    """x: (B, T, H, D). Rotates pairs (j, j + D/2) by angle t * theta^(-2j/D)."""
    _, t, _, d = x.shape
    inv_freq = theta ** (-torch.arange(0, d // 2, dtype=torch.float64) * 2.0 / d)
    angles = torch.arange(t, dtype=torch.float64)[:, None] * inv_freq[None, :]  # (T, D/2)
    cos = torch.cat([angles.cos(), angles.cos()], -1).to(x.dtype)[None, :, None, :]
    sin = torch.cat([angles.sin(), angles.sin()], -1).to(x.dtype)[None, :, None, :]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def attention(q, k, v):
    """q (B, T, Hq, D), k and v (B, T, Hkv, D) -> (B, T, Hq, D), causal."""
    group = q.shape[2] // k.shape[2]
    k = k.repeat_interleave(group, dim=2)
    v = v.repeat_interleave(group, dim=2)
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # (B, H, T, D)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    t = q.shape[2]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2)


def forward(params, cfg, inputs):
    """params: name -> tensor (meap names). inputs (B, T) int64. Returns logits (B, T, V)."""
    c, hq, hkv = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    d = c // hq
    b, t = inputs.shape
    x = params["tok_embeddings.weight"][inputs]
    for layer in range(cfg["n_layers"]):
        p = lambda name: params[f"layers.{layer}.{name}"]
        h = rms_norm(x, p("attention_norm.weight"), cfg["norm_eps"])
        qkv = (h @ p("attention.wqkv.weight").T).view(b, t, hq + 2 * hkv, d)
        q = rotate(qkv[:, :, :hq], cfg["rope_theta"])
        k = rotate(qkv[:, :, hq:hq + hkv], cfg["rope_theta"])
        v = qkv[:, :, hq + hkv:]
        att = attention(q, k, v).reshape(b, t, hq * d)
        x = x + att @ p("attention.wo.weight").T
        h = rms_norm(x, p("ffn_norm.weight"), cfg["norm_eps"])
        gate, up = (h @ p("feed_forward.w_gate_up.weight").T).chunk(2, dim=-1)
        x = x + (torch.nn.functional.silu(gate) * up) @ p("feed_forward.w_down.weight").T
    x = rms_norm(x, params["norm.weight"], cfg["norm_eps"])
    head = params["tok_embeddings.weight"] if cfg["tie_embeddings"] else params["output.weight"]
    return x @ head.T


def weighted_loss(logits, targets, weights):
    """Weighted mean of per-token cross-entropy; weight 0 positions are ignored."""
    v = logits.shape[-1]
    safe_targets = torch.where(weights > 0, targets, torch.zeros_like(targets))
    per_token = torch.nn.functional.cross_entropy(
        logits.reshape(-1, v), safe_targets.reshape(-1), reduction="none")
    w = weights.reshape(-1).to(per_token.dtype)
    return (per_token * w).sum() / w.sum()
