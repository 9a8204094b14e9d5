#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention(is_causal=True) in bf16 on the shapes of
bench_attention: head dims 64 and 128, T = 512 .. 4096, B * T = --tokens, Hq = 16, Hkv = 4.

The outside reference for our flash attention (bench/attention.sh prints both side by side).
Forward and forward + backward are each timed with CUDA events after warm-up; the median is
reported. FLOP convention as in bench_attention.cpp: forward 2 B Hq T^2 D (causal half of two
matmuls), forward + backward 3.5 x that.

GQA: with enable_gqa=True where this torch has it; otherwise K and V are expanded to Hq heads
before timing (as leaf tensors, so the expansion and the reduction of their gradients over each
group are not timed -- a slight advantage to SDPA). Tensors are laid out (B, H, T, D), SDPA's
native layout. Prints one JSON line per shape on stdout.
"""
import argparse
import json
import statistics
import sys


def median_ms(torch, fn, warmup, iters):
    for _ in range(warmup):
        fn()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(iters):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def has_enable_gqa(torch, sdpa):
    q = torch.zeros(1, 2, 4, 64, device="cuda", dtype=torch.bfloat16)
    kv = torch.zeros(1, 1, 4, 64, device="cuda", dtype=torch.bfloat16)
    try:
        sdpa(q, kv, kv, is_causal=True, enable_gqa=True)
        return True
    except (TypeError, RuntimeError):
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=16384)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    if not hasattr(F, "scaled_dot_product_attention"):
        print(f"attention_sdpa.py: torch {torch.__version__} has no "
              "scaled_dot_product_attention (needs torch >= 2.0)", file=sys.stderr)
        return 3
    if not torch.cuda.is_available():
        print("attention_sdpa.py: no CUDA GPU visible to torch", file=sys.stderr)
        return 2
    sdpa = F.scaled_dot_product_attention
    gqa = has_enable_gqa(torch, sdpa)
    group = args.heads // args.kv_heads
    device = torch.cuda.get_device_name(0)
    print(f"torch {torch.__version__} on {device}, enable_gqa: {gqa}", file=sys.stderr)

    torch.manual_seed(0)
    for d in (64, 128):
        for t in (512, 1024, 2048, 4096):
            b = args.tokens // t
            if b < 1:
                continue
            opts = dict(device="cuda", dtype=torch.bfloat16)
            q = torch.randn(b, args.heads, t, d, **opts).requires_grad_()
            kv_heads = args.kv_heads if gqa else args.heads
            k = torch.randn(b, args.kv_heads, t, d, **opts)
            v = torch.randn(b, args.kv_heads, t, d, **opts)
            if not gqa:
                k = k.repeat_interleave(group, dim=1)
                v = v.repeat_interleave(group, dim=1)
            k.requires_grad_()
            v.requires_grad_()
            dout = torch.randn(b, args.heads, t, d, **opts)
            extra = {"enable_gqa": True} if gqa else {}

            def forward():
                with torch.no_grad():
                    sdpa(q, k, v, is_causal=True, **extra)

            def forward_backward():
                q.grad = k.grad = v.grad = None
                out = sdpa(q, k, v, is_causal=True, **extra)
                out.backward(dout)

            fwd_ms = median_ms(torch, forward, args.warmup, args.iters)
            both_ms = median_ms(torch, forward_backward, args.warmup, args.iters)
            fwd_flop = 2.0 * b * args.heads * t * t * d
            print(json.dumps({
                "impl": "torch_sdpa", "device": device, "torch": torch.__version__,
                "enable_gqa": gqa, "kv_heads_in_memory": kv_heads, "head_dim": d,
                "seq_len": t, "batch": b, "n_heads": args.heads, "n_kv_heads": args.kv_heads,
                "fwd_ms": round(fwd_ms, 4), "fwd_tflops": round(fwd_flop / fwd_ms / 1e9, 2),
                "fwd_bwd_ms": round(both_ms, 4),
                "fwd_bwd_tflops": round(3.5 * fwd_flop / both_ms / 1e9, 2),
            }), flush=True)
            del q, k, v, dout
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
