"""The [tokenizers] acceptance for import / train / export with a Hugging Face tokenizer.json.

usage: test_hf_tokenizer_json.py MEAP EXPORT_PROBE WORK_DIR

For two byte-level BPE tokenizers trained here with the tokenizers library -- Llama 3 style
(split regex, reserved special tokens: [MASK] reuses one) and GPT-2 style (no reserved
token: [MASK] is appended) -- a LlamaForCausalLM written by transformers (save_pretrained)
with that tokenizer.json (and no tokenizer.model) is
  - imported by `meap import` (same logits as transformers; the tokenizer.json copied);
  - trained a few steps from the import on `meap prepare --tokenizer tokenizer.json` shards;
  - exported by `meap export`; transformers loads model and tokenizer, its logits match
    meap's, and AutoTokenizer's ids equal meap's and the original tokenizer's on the
    license texts; its mask_token is meap's [MASK].
"""
import functools
import json
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checks import check, failures, run  # noqa: E402
import probe_logits  # noqa: E402

MEAP, PROBE, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
meap_logits = functools.partial(probe_logits.meap_logits, PROBE, WORK)
rel_err = probe_logits.rel_err
LICENSES = "/usr/share/common-licenses"
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
FP32_LIMIT = 1e-4


def license_texts():
    names = [n for n in sorted(os.listdir(LICENSES))
             if not os.path.islink(os.path.join(LICENSES, n))]
    return names, [open(os.path.join(LICENSES, n), encoding="utf-8").read() for n in names]


def train_tokenizer(style, texts, path):
    tok = Tokenizer(models.BPE(ignore_merges=style == "llama3"))
    if style == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                    "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        specials = ["<|endoftext|>"]
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(path)
    return tok


def meap_ids(tokenizer_file, text):
    path = os.path.join(WORK, "text.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return [int(x) for x in run(PROBE, "encode", tokenizer_file, path).stdout.split()]


def one_style(style, names, texts, corpus):
    work = os.path.join(WORK, style)
    os.makedirs(work)
    tok_path = os.path.join(work, "tokenizer.json")
    original = train_tokenizer(style, texts, tok_path)
    vocab = original.get_vocab_size()
    # The model directory as transformers writes it: weights, config, tokenizer files.
    torch.manual_seed(4)
    cfg = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False)
    model = transformers.LlamaForCausalLM(cfg)
    hf_dir = os.path.join(work, "hf")
    model.save_pretrained(hf_dir)
    transformers.PreTrainedTokenizerFast(tokenizer_file=tok_path).save_pretrained(hf_dir)
    check(not os.path.exists(os.path.join(hf_dir, "tokenizer.model")),
          f"{style}: the HF directory has tokenizer.json and no tokenizer.model")

    imported = os.path.join(work, "imported")
    p = run(MEAP, "import", hf_dir, "--out", imported)
    appended = style != "llama3"
    meap_vocab = vocab + (1 if appended else 0)
    rng = np.random.default_rng(8)
    tokens = rng.integers(0, vocab, size=(2, 24))
    with torch.no_grad():
        theirs = model(torch.from_numpy(tokens)).logits.numpy()
    err = rel_err(meap_logits(imported, tokens)[..., :vocab], theirs)
    check("tokenizer.json copied" in p.stderr and
          os.path.exists(os.path.join(imported, "tokenizer.json")) and err <= FP32_LIMIT,
          f"{style}: import copies tokenizer.json, logits max rel error {err:.2e}")
    check(("one row added for [MASK]" in p.stderr) == appended,
          f"{style}: [MASK] {'appended (one row added)' if appended else 'reuses a reserved token'}")

    # Shards made with the imported tokenizer.json, a few training steps from the import.
    data = os.path.join(work, "data")
    run(MEAP, "prepare", "--out", data, "--tokenizer", os.path.join(imported, "tokenizer.json"),
        "--val-fraction", "0.2", "--threads", "2", corpus)
    manifest = json.load(open(os.path.join(data, "prepare.json")))["tokenizer"]
    want_mask = vocab if appended else original.token_to_id("<|reserved_special_token_0|>")
    check(manifest["kind"] == "hf-bpe" and manifest["model"] == "tokenizer.json" and
          manifest["mask"] == want_mask and manifest["mask_appended"] == appended and
          manifest["vocab_size"] == meap_vocab,
          f"{style}: prepare.json records the tokenizer.json and [MASK] ({manifest['mask_piece']}"
          f", id {manifest['mask']})")
    cfg_path = os.path.join(work, "run.yaml")
    run_dir = os.path.join(work, "run")
    with open(cfg_path, "w") as f:
        f.write(f"""run: {{name: hf-json, out_dir: {run_dir}, seed: 7}}
model: {{vocab_size: {meap_vocab}, dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 96,
        max_seq_len: 64, rope_theta: 500000, norm_eps: 1.0e-5}}
data: {{train: {data}/train-*.bin, val: {data}/val-*.bin,
       tokenizer: {data}/tokenizer.json, seq_len: 32, meap: {{mask_ratio: 0.15}}}}
optim: {{lr: 3.0e-3, min_lr: 3.0e-4, warmup_steps: 1}}
train: {{global_batch_size: 8, micro_batch_size: 8, max_steps: 3, device: cpu}}
checkpoint: {{interval: 3, init_from: {imported}}}
eval: {{interval: 3, steps: 1}}
log: {{interval: 1}}
""")
    p = run(MEAP, "train", cfg_path)
    check("initialised from" in p.stdout + p.stderr, f"{style}: 3 training steps from the import")

    exported = os.path.join(work, "exported")
    run(MEAP, "export", run_dir, "--out", exported)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(exported, torch_dtype=torch.float32)
    tokens = rng.integers(0, meap_vocab, size=(2, 24))
    with torch.no_grad():
        theirs = hf_model(torch.from_numpy(tokens)).logits.numpy()
    err = rel_err(theirs, meap_logits(run_dir, tokens))
    check(err <= FP32_LIMIT, f"{style}: transformers loads the trained export, logits max rel "
          f"error {err:.2e}")

    hf_tok = transformers.AutoTokenizer.from_pretrained(exported)
    meap_tok_file = os.path.join(data, "tokenizer.json")
    samples = texts + ["digits 12345, accents é and 🎉", "tabs\tand\r\nCRLF  runs   ",
                       "Καλημέρα κόσμε 中文 😀"]
    differ = n_tokens = 0
    for text in samples:
        ours = meap_ids(meap_tok_file, text)
        differ += (hf_tok(text, add_special_tokens=False)["input_ids"] != ours or
                   original.encode(text, add_special_tokens=False).ids != ours or
                   hf_tok.decode(ours) != text)
        n_tokens += len(ours)
    check(differ == 0, f"{style}: AutoTokenizer of the export = meap = the original tokenizer on "
          f"{len(samples)} texts, {n_tokens} tokens, and decodes them back ({differ} differ)")
    check(type(hf_tok).__name__ == "PreTrainedTokenizerFast" and hf_tok.mask_token_id == want_mask
          and hf_tok.eos_token_id == manifest["eos"] and len(hf_tok) == meap_vocab,
          f"{style}: the export's tokenizer has mask_token {hf_tok.mask_token!r} = id {want_mask}, "
          f"EOS {hf_tok.eos_token_id}, {len(hf_tok)} ids")


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    names, texts = license_texts()
    corpus = os.path.join(WORK, "corpus")
    os.makedirs(corpus)
    for n in names:
        shutil.copy(os.path.join(LICENSES, n), corpus)
    for style in ("llama3", "gpt2"):
        one_style(style, names, texts, corpus)
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)


if __name__ == "__main__":
    main()
