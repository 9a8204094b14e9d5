"""An independent PyTorch implementation of meap's Llama, used as an outside oracle.

Written from the architecture (RMSNorm, RoPE with the Hugging Face rotate-half
convention, grouped-query causal attention, SwiGLU) with torch autograd for the
gradients -- it shares no code with meap's explicit backward.
Tensor names are meap's own (see include/meap/model/llama.hpp).

Precision: by default every op runs in the parameters' dtype (float64 for the gradient
test, float32 for the fp32 training reference). With `dtype=torch.bfloat16` the model
follows meap's bf16 contract (include/meap/backend/backend.hpp, "Precisions"): the weights are
cast to bf16 where they are used (so float32 parameters receive float32 gradients, as
meap's f32 gradient buffer does), activations between ops are bf16, and each op computes
internally in float32 (norm statistics, rotary tables, softmax) before rounding its output.
Works on any device the inputs live on.
"""
import math

import torch
import torch.nn.functional as F


def _compute_dtype(x):
    """The dtype an op computes in: float64 stays float64, everything else float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def rms_norm(x, weight, eps):
    """x (..., C), weight (C); statistics in float32 (or float64), output in x's dtype."""
    xc = x.to(_compute_dtype(x))
    out = xc * torch.rsqrt(xc.pow(2).mean(-1, keepdim=True) + eps) * weight.to(xc.dtype)
    return out.to(x.dtype)


def rotate(x, theta):
    """x: (B, T, H, D). Rotates pairs (j, j + D/2) by angle t * theta^(-2j/D)."""
    _, t, _, d = x.shape
    inv_freq = theta ** (-torch.arange(0, d // 2, dtype=torch.float64) * 2.0 / d)
    angles = torch.arange(t, dtype=torch.float64)[:, None] * inv_freq[None, :]  # (T, D/2)
    cdt = _compute_dtype(x)
    cos = torch.cat([angles.cos(), angles.cos()], -1).to(x.device, cdt)[None, :, None, :]
    sin = torch.cat([angles.sin(), angles.sin()], -1).to(x.device, cdt)[None, :, None, :]
    xc = x.to(cdt)
    x1, x2 = xc[..., : d // 2], xc[..., d // 2:]
    return (xc * cos + torch.cat([-x2, x1], -1) * sin).to(x.dtype)


def attention(q, k, v):
    """q (B, T, Hq, D), k and v (B, T, Hkv, D) -> (B, T, Hq, D), causal.

    Query head h reads key/value head h // (Hq / Hkv). Scores and softmax in float32 (or
    float64); for bf16 on a GPU with torch >= 2.0, the fused scaled_dot_product_attention
    (flash / memory-efficient: bf16 inputs, float32 softmax, no (T, T) scores kept), which
    is what meap's CUDA attention computes, in far less memory.
    """
    group = q.shape[2] // k.shape[2]
    k = k.repeat_interleave(group, dim=2)
    v = v.repeat_interleave(group, dim=2)
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # (B, H, T, D)
    if (q.dtype == torch.bfloat16 and q.is_cuda and
            hasattr(F, "scaled_dot_product_attention")):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
    cdt = _compute_dtype(q)
    scores = q.to(cdt) @ k.to(cdt).transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, T, T)
    t = q.shape[2]
    causal = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    probs = scores.softmax(-1).to(q.dtype)
    return (probs @ v).transpose(1, 2)


def forward(params, cfg, inputs, dtype=None):
    """params: name -> tensor (meap names). inputs (B, T) int64. Returns logits (B, T, V).

    dtype: the activation dtype (default: the parameters'). Weights are cast to it at each
    use, so their gradients come back in the parameters' own dtype.
    """
    c, hq, hkv = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    d = c // hq
    b, t = inputs.shape
    table = params["tok_embeddings.weight"]
    dtype = dtype or table.dtype
    w = lambda name: params[name].to(dtype)  # noqa: E731  (a no-op when dtypes agree)
    # Gather first, then cast: the embedding gradient is scattered in the table's dtype
    # (meap scatters into its f32 gradient buffer, never in bf16).
    x = table[inputs].to(dtype)  # (B, T, C)
    for layer in range(cfg["n_layers"]):
        p = lambda name: w(f"layers.{layer}.{name}")  # noqa: E731
        h = rms_norm(x, p("attention_norm.weight"), cfg["norm_eps"])
        qkv = (h @ p("attention.wqkv.weight").T).view(b, t, hq + 2 * hkv, d)
        q = rotate(qkv[:, :, :hq], cfg["rope_theta"])
        k = rotate(qkv[:, :, hq:hq + hkv], cfg["rope_theta"])
        v = qkv[:, :, hq + hkv:]
        att = attention(q, k, v).reshape(b, t, hq * d)
        x = x + att @ p("attention.wo.weight").T
        h = rms_norm(x, p("ffn_norm.weight"), cfg["norm_eps"])
        gate, up = (h @ p("feed_forward.w_gate_up.weight").T).chunk(2, dim=-1)  # (B, T, F) x 2
        cdt = _compute_dtype(gate)
        act = (F.silu(gate.to(cdt)) * up.to(cdt)).to(dtype)
        x = x + act @ p("feed_forward.w_down.weight").T
    x = rms_norm(x, w("norm.weight"), cfg["norm_eps"])
    head = w("tok_embeddings.weight") if cfg["tie_embeddings"] else w("output.weight")
    return x @ head.T


def per_token_loss(logits, targets, weights):
    """Cross-entropy of every position (B*T,) in float32 (float64 for float64 logits);
    positions of weight 0 read target 0 so that any id there is harmless."""
    v = logits.shape[-1]
    safe_targets = torch.where(weights > 0, targets, torch.zeros_like(targets))
    return F.cross_entropy(logits.reshape(-1, v).to(_compute_dtype(logits)),
                           safe_targets.reshape(-1), reduction="none")


def weighted_loss(logits, targets, weights):
    """Weighted mean of per-token cross-entropy; weight 0 positions are ignored."""
    per_token = per_token_loss(logits, targets, weights)
    w = weights.reshape(-1).to(per_token.dtype)
    return (per_token * w).sum() / w.sum()
