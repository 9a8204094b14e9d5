"""The [export] acceptance, checked by the transformers library itself.

usage: test_hf_export.py MEAP EXPORT_PROBE WORK_DIR

Trains two tiny GQA models with `meap train` (untied and tied head) on a corpus of Debian's
license texts, exports them with `meap export`, and checks that
  - AutoModelForCausalLM loads each export and its logits match our CPU forward
    (max |hf - meap| / max |meap| <= 1e-4 in fp32; bf16 and sharded exports too);
  - AutoTokenizer (fast and slow) gives our tokenizer's ids, [MASK] included;
  - export -> `meap import` gives bit-identical weights;
  - a model written by transformers (LlamaForCausalLM(config).save_pretrained) imports
    with the same logits in our forward as in transformers, with and without [MASK] in its
    vocabulary (then one row is added);
  - malformed inputs are refused naming the tensor or field, and leave nothing behind.
"""
import functools
import json
import os
import re
import shutil
import sys

import numpy as np
import sentencepiece as spm
import torch
import transformers
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from license_corpus import prepare_license_corpus  # noqa: E402
from checks import check, failures, run  # noqa: E402
import probe_logits  # noqa: E402

MEAP, PROBE, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
meap_logits = functools.partial(probe_logits.meap_logits, PROBE, WORK)
rel_err = probe_logits.rel_err
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FP32_LIMIT = 1e-4
BF16_LIMIT = 2e-2


def hf_logits(model_dir, tokens, dtype=torch.float32):
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=dtype)
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(tokens.astype(np.int64))).logits
    return model, out.float().numpy()


def write_config(path, run_dir, data_dir, tied):
    with open(path, "w") as f:
        f.write(f"""run: {{name: export-test, out_dir: {run_dir}, seed: 7}}
model: {{vocab_size: 400, dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 96,
        max_seq_len: 64, tie_embeddings: {str(tied).lower()}}}
data: {{train: {data_dir}/train-*.bin, val: {data_dir}/val-*.bin,
       tokenizer: {data_dir}/tokenizer.model, seq_len: 32, meap: {{mask_ratio: 0.15}}}}
optim: {{lr: 3.0e-3, min_lr: 3.0e-4, warmup_steps: 2}}
train: {{global_batch_size: 8, micro_batch_size: 8, max_steps: 6, device: cpu}}
checkpoint: {{interval: 6}}
eval: {{interval: 6, steps: 1}}
log: {{interval: 1}}
""")


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    corpus, data = prepare_license_corpus(MEAP, WORK)
    tokenizer_model = os.path.join(data, "tokenizer.model")

    rng = np.random.default_rng(5)
    tokens = rng.integers(0, 400, size=(3, 32))
    exports = {}
    for tied in (False, True):
        label = "tied" if tied else "untied"
        run_dir = os.path.join(WORK, f"run-{label}")
        cfg = os.path.join(WORK, f"{label}.yaml")
        write_config(cfg, run_dir, data, tied)
        run(MEAP, "train", cfg)
        out = os.path.join(WORK, f"hf-{label}")
        run(MEAP, "export", run_dir, "--out", out)
        exports[label] = (run_dir, out)
        ours = meap_logits(run_dir, tokens)
        model, theirs = hf_logits(out, tokens)
        check(model.config.tie_word_embeddings == tied and model.config.num_key_value_heads == 2,
              f"{label}: transformers reads the config (GQA 4/2 heads, tied={tied})")
        err = rel_err(theirs, ours)
        check(err <= FP32_LIMIT, f"{label}: fp32 export logits vs meap: max rel error {err:.2e} "
              f"(limit {FP32_LIMIT:.0e})")

    run_dir, fp32_dir = exports["untied"]
    ours = meap_logits(run_dir, tokens)
    # bf16 export: transformers loads bf16 weights; computed in fp32 they track ours.
    bf16_dir = os.path.join(WORK, "hf-bf16")
    run(MEAP, "export", run_dir, "--out", bf16_dir, "--dtype", "bf16")
    model = transformers.AutoModelForCausalLM.from_pretrained(bf16_dir, torch_dtype="auto")
    check(model.config.torch_dtype == torch.bfloat16 and
          next(model.parameters()).dtype == torch.bfloat16, "bf16 export loads as bfloat16")
    with torch.no_grad():
        theirs = model.float()(torch.from_numpy(tokens.astype(np.int64))).logits.numpy()
    err = rel_err(theirs, ours)
    check(err <= BF16_LIMIT, f"bf16 export logits vs meap fp32: max rel error {err:.2e} "
          f"(limit {BF16_LIMIT:.0e})")

    # Sharded export: an index file and several shards, loading to the same logits.
    sharded = os.path.join(WORK, "hf-sharded")
    run(MEAP, "export", run_dir, "--out", sharded, "--max-shard-size", "300KB")
    index = json.load(open(os.path.join(sharded, "model.safetensors.index.json")))
    files = sorted(set(index["weight_map"].values()))
    _, theirs = hf_logits(sharded, tokens)
    _, unsharded = hf_logits(fp32_dir, tokens)
    check(len(files) > 1 and np.array_equal(theirs, unsharded),
          f"sharded export ({len(files)} files + index) gives the unsharded logits")

    # Tokenizer: our ids for validation text, [MASK] included. transformers (like every HF
    # tokenizer) reads special tokens written in the text -- "[MASK]", "<unk>" -- as their
    # ids, while meap's encoder never produces a special id from text; so the text is cut at
    # special tokens, the pieces encoded by meap, and the special ids put in between.
    cache = {}

    def meap_ids(text):
        if text not in cache:
            path = os.path.join(WORK, "text.txt")
            with open(path, "w") as f:
                f.write(text)
            cache[text] = [int(x) for x in run(PROBE, "encode", tokenizer_model, path).stdout.split()]
        return cache[text]

    texts = open(os.path.join(REPO, "docs", "data.md")).read().split("\n\n")[:40]
    texts += ["  two leading spaces", "digits 12345, accents é and 🎉", "tabs\tand\nnewlines\n",
              "In the beginning[MASK] was the word.", "[MASK][MASK] x"]
    for fast in (True, False):
        tok = transformers.AutoTokenizer.from_pretrained(fp32_dir, use_fast=fast)
        kind = type(tok).__name__
        check(tok.mask_token == "[MASK]" and tok.mask_token_id == 4 and tok.eos_token_id == 2,
              f"{kind}: [MASK] is special token id 4, EOS is 2")
        specials = re.compile("(" + "|".join(map(re.escape, tok.all_special_tokens)) + ")")
        mismatched = with_mask = 0
        for text in texts:
            expected = []
            for part in specials.split(text):
                if part in tok.all_special_tokens:
                    expected.append(tok.convert_tokens_to_ids(part))
                elif part:
                    expected += meap_ids(part)
            got = tok(text, add_special_tokens=False)["input_ids"]
            mismatched += got != expected
            with_mask += 4 in got
        check(mismatched == 0 and with_mask >= 4,
              f"{kind}: same ids as meap's tokenizer on {len(texts)} texts, {with_mask} with "
              f"[MASK] ({mismatched} differ)")

    # Round trip: export -> import gives bit-identical weights.
    for label, (run_dir, hf_dir) in exports.items():
        imported = os.path.join(WORK, f"imported-{label}")
        run(MEAP, "import", hf_dir, "--out", imported)
        latest = open(os.path.join(run_dir, "checkpoints", "latest")).read().strip()
        original = load_file(os.path.join(run_dir, "checkpoints", latest, "model.safetensors"))
        again = load_file(os.path.join(imported, "model.safetensors"))
        same = original.keys() == again.keys() and all(
            np.array_equal(original[k].view(np.uint32), again[k].view(np.uint32))
            for k in original)
        check(same, f"{label}: export -> import round trip is bit-identical "
              f"({len(original)} tensors)")

    # Models written by transformers itself.
    torch.manual_seed(3)
    vocab = spm.SentencePieceProcessor(model_file=tokenizer_model).get_piece_size()
    for tied in (False, True):
        label = "tied" if tied else "untied"
        cfg = transformers.LlamaConfig(
            vocab_size=vocab, hidden_size=64, intermediate_size=80, num_hidden_layers=2,
            num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=64,
            rope_theta=500000.0, rms_norm_eps=1e-6, tie_word_embeddings=tied)
        model = transformers.LlamaForCausalLM(cfg)
        hf_dir = os.path.join(WORK, f"transformers-{label}")
        model.save_pretrained(hf_dir)
        shutil.copy(tokenizer_model, hf_dir)
        imported = os.path.join(WORK, f"from-transformers-{label}")
        run(MEAP, "import", hf_dir, "--out", imported)
        tokens_v = rng.integers(0, vocab, size=(2, 40))
        with torch.no_grad():
            theirs = model(torch.from_numpy(tokens_v)).logits.numpy()
        err = rel_err(meap_logits(imported, tokens_v), theirs)
        check(err <= FP32_LIMIT, f"transformers-written {label} model (8 heads / 2 kv, rope_theta "
              f"5e5): meap logits max rel error {err:.2e}")
        if not tied:
            # Continued pre-training from the import: checkpoint.init_from loads its weights
            # (a 1e-9 learning rate leaves them as they were, so transformers' logits hold).
            cont = os.path.join(WORK, "continued")
            cfg_path = os.path.join(WORK, "continued.yaml")
            write_config(cfg_path, cont, data, tied=False)
            shape = ["model.dim=64", "model.ffn_dim=80", "model.n_heads=8", "model.n_kv_heads=2",
                     "model.rope_theta=500000", "model.norm_eps=1e-6", f"model.vocab_size={vocab}"]
            p = run(MEAP, "train", cfg_path, *shape, "optim.lr=1e-9", "optim.min_lr=0",
                    "train.max_steps=1", f"checkpoint.init_from={imported}")
            err = rel_err(meap_logits(cont, tokens_v), theirs)
            check("initialised from" in p.stdout + p.stderr and err <= FP32_LIMIT,
                  f"checkpoint.init_from continues from the import (logits max rel error "
                  f"{err:.2e} after one step at lr 1e-9)")
            p = run(MEAP, "train", cfg_path, "run.out_dir=" + cont + "-bad",
                    f"checkpoint.init_from={imported}", expect=None)
            check(p.returncode != 0 and "checkpoint.init_from" in p.stderr and
                  "another shape" in p.stderr, "checkpoint.init_from of another shape is refused")

    # A vocabulary without [MASK]: a SentencePiece model trained here without it.
    plain_prefix = os.path.join(WORK, "plain")
    spm.SentencePieceTrainer.train(
        input=os.path.join(corpus, "GPL-3"), model_prefix=plain_prefix, vocab_size=300,
        model_type="bpe", bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2)
    cfg = transformers.LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=1, num_attention_heads=4,
                                   num_key_value_heads=4, max_position_embeddings=32)
    model = transformers.LlamaForCausalLM(cfg)
    hf_dir = os.path.join(WORK, "transformers-nomask")
    model.save_pretrained(hf_dir)
    shutil.copy(plain_prefix + ".model", os.path.join(hf_dir, "tokenizer.model"))
    imported = os.path.join(WORK, "from-transformers-nomask")
    p = run(MEAP, "import", hf_dir, "--out", imported)
    weights = load_file(os.path.join(imported, "model.safetensors"))
    emb = weights["tok_embeddings.weight"]
    check(emb.shape == (301, 32) and weights["output.weight"].shape == (301, 32) and
          np.allclose(emb[300], emb[:300].astype(np.float64).mean(0), atol=1e-7) and
          "one row added for [MASK]" in p.stderr,
          "vocabulary without [MASK]: import adds row 300 (the mean row) to embedding and head")
    tokens_v = rng.integers(0, 300, size=(2, 20))
    with torch.no_grad():
        theirs = model(torch.from_numpy(tokens_v)).logits.numpy()
    err = rel_err(meap_logits(imported, tokens_v)[..., :300], theirs)
    check(err <= FP32_LIMIT, f"grown model keeps transformers' logits: max rel error {err:.2e}")

    # A vocabulary padded beyond its tokenizer (320 rows, 300 pieces): cut to the tokenizer's
    # 300 pieces + [MASK], so shards made with that tokenizer train from it.
    cfg = transformers.LlamaConfig(vocab_size=320, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=1, num_attention_heads=4,
                                   num_key_value_heads=2, max_position_embeddings=64)
    model = transformers.LlamaForCausalLM(cfg)
    hf_dir = os.path.join(WORK, "transformers-padded")
    model.save_pretrained(hf_dir)
    shutil.copy(plain_prefix + ".model", os.path.join(hf_dir, "tokenizer.model"))
    imported = os.path.join(WORK, "from-transformers-padded")
    p = run(MEAP, "import", hf_dir, "--out", imported)
    weights = load_file(os.path.join(imported, "model.safetensors"))
    tokens_v = rng.integers(0, 300, size=(2, 20))
    with torch.no_grad():
        theirs = model(torch.from_numpy(tokens_v)).logits.numpy()
    err = rel_err(meap_logits(imported, tokens_v)[..., :300], theirs[..., :300])
    check(weights["tok_embeddings.weight"].shape == (301, 32) and
          "19 padding rows past the tokenizer cut" in p.stderr and err <= FP32_LIMIT,
          f"padded vocabulary (320 rows, 300 pieces) imports as 301 rows; logits max rel error "
          f"{err:.2e}")
    padded_data = os.path.join(WORK, "padded-data")
    run(MEAP, "prepare", "--out", padded_data, "--tokenizer", plain_prefix + ".model",
        "--val-fraction", 0.2, "--threads", 1, corpus)
    cfg_path = os.path.join(WORK, "padded.yaml")
    write_config(cfg_path, os.path.join(WORK, "padded-run"), padded_data, tied=False)
    p = run(MEAP, "train", cfg_path, "model.vocab_size=301", "model.dim=32", "model.ffn_dim=64",
            "model.n_layers=1", "model.norm_eps=1e-6", "model.max_seq_len=64",
            "train.max_steps=1", f"checkpoint.init_from={imported}", expect=None)
    check(p.returncode == 0, "a run starts from the padded import on shards of its tokenizer")
    if p.returncode != 0:
        print("     stderr:", p.stderr.strip()[-400:])
    # A tokenizer with more pieces than the model has rows belongs to another model.
    cfg.vocab_size = 290
    hf_dir = os.path.join(WORK, "transformers-small-vocab")
    transformers.LlamaForCausalLM(cfg).save_pretrained(hf_dir)
    shutil.copy(plain_prefix + ".model", os.path.join(hf_dir, "tokenizer.model"))

    # Malformed inputs: refused naming the tensor or field; nothing left behind.
    def refused(args, needle, what):
        out = args[args.index("--out") + 1]
        p = run(MEAP, *args, expect=None)
        parent = os.path.dirname(out)
        leftovers = [n for n in os.listdir(parent) if n.startswith(os.path.basename(out) + ".")]
        check(p.returncode != 0 and needle in p.stderr and not os.path.exists(out) and
              not leftovers, f"{what}: refused naming {needle!r}")
        if needle not in p.stderr:
            print("     stderr:", p.stderr.strip()[:300])

    bad = os.path.join(WORK, "bad-missing")
    shutil.copytree(fp32_dir, bad)
    tensors = load_file(os.path.join(bad, "model.safetensors"))
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, os.path.join(bad, "model.safetensors"), metadata={"format": "pt"})
    refused(["import", bad, "--out", os.path.join(WORK, "out-missing")],
            "model.layers.1.mlp.up_proj.weight", "HF dir missing a tensor")

    bad = os.path.join(WORK, "bad-shape")
    shutil.copytree(fp32_dir, bad)
    tensors = load_file(os.path.join(bad, "model.safetensors"))
    tensors["model.layers.0.self_attn.k_proj.weight"] = np.zeros((8, 64), np.float32)
    save_file(tensors, os.path.join(bad, "model.safetensors"), metadata={"format": "pt"})
    refused(["import", bad, "--out", os.path.join(WORK, "out-shape")],
            "model.layers.0.self_attn.k_proj.weight", "HF tensor of the wrong shape")

    bad = os.path.join(WORK, "bad-arch")
    shutil.copytree(fp32_dir, bad)
    config = json.load(open(os.path.join(bad, "config.json")))
    config["architectures"] = ["GPT2LMHeadModel"]
    json.dump(config, open(os.path.join(bad, "config.json"), "w"))
    refused(["import", bad, "--out", os.path.join(WORK, "out-arch")], "architectures",
            "unknown architecture")

    config["architectures"] = ["LlamaForCausalLM"]
    config["rope_scaling"] = {"type": "linear", "factor": 2.0}
    json.dump(config, open(os.path.join(bad, "config.json"), "w"))
    refused(["import", bad, "--out", os.path.join(WORK, "out-rope")], "rope_scaling",
            "rope_scaling that meap does not implement")

    refused(["import", hf_dir, "--out", os.path.join(WORK, "out-small-vocab")],
            "300 pieces but config.json's vocab_size is 290", "tokenizer larger than the model")

    bad_ckpt = os.path.join(WORK, "bad-checkpoint")
    latest = open(os.path.join(run_dir, "checkpoints", "latest")).read().strip()
    shutil.copytree(os.path.join(run_dir, "checkpoints", latest), bad_ckpt)
    tensors = load_file(os.path.join(bad_ckpt, "model.safetensors"))
    del tensors["layers.0.attention.wo.weight"]
    save_file(tensors, os.path.join(bad_ckpt, "model.safetensors"))
    # The edited file no longer has the checksum its manifest recorded: refused as corrupt.
    refused(["export", bad_ckpt, "--out", os.path.join(WORK, "out-bad-ckpt")],
            "model.safetensors (a checkpoint file) is corrupt", "checkpoint edited after writing")
    # As a checkpoint of before checksums (manifest version 1: loaded unverified, with a
    # warning), the missing tensor itself is named.
    manifest_path = os.path.join(bad_ckpt, "manifest.json")
    manifest = json.load(open(manifest_path))
    for key in ("files", "checksum", "config_changes"):
        manifest.pop(key)
    manifest["version"] = 1
    json.dump(manifest, open(manifest_path, "w"))
    refused(["export", bad_ckpt, "--out", os.path.join(WORK, "out-bad-ckpt")],
            "layers.0.attention.wo.weight", "checkpoint missing a tensor")

    before = sorted(os.listdir(fp32_dir))
    p = run(MEAP, "export", run_dir, "--out", fp32_dir, expect=None)
    check(p.returncode != 0 and "already exists" in p.stderr and
          sorted(os.listdir(fp32_dir)) == before, "export onto an existing directory is refused "
          "and leaves it alone")
    # --force replaces an earlier export (swapped in whole), never a run or checkpoint.
    p = run(MEAP, "export", run_dir, "--out", fp32_dir, "--dtype", "bf16", "--force")
    replaced = json.load(open(os.path.join(fp32_dir, "config.json")))["torch_dtype"]
    leftovers = [n for n in os.listdir(WORK) if n.startswith("hf-untied.")]
    check(replaced == "bfloat16" and not leftovers, "--force replaces an earlier export whole")
    run_files = sorted(os.listdir(run_dir))
    p = run(MEAP, "export", run_dir, "--out", run_dir, "--force", expect=None)
    check(p.returncode != 0 and "not an earlier output" in p.stderr and
          sorted(os.listdir(run_dir)) == run_files, "--force onto the run directory is refused")

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all export checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
