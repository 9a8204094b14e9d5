"""The outside check of `meap eval`: lm-evaluation-harness scores the same items the same way.

usage: test_lm_eval_agreement.py MEAP WORK_DIR

Trains a tiny MEAP model on Debian's license texts, exports it (`meap export`), writes NIAH
and MDQA items with `meap eval --items-dir` and scores them there, then runs lm-eval 0.4.8
(offline, `--model hf` on the export) with local multiple-choice tasks over the same JSONL
files, and a local rolling-perplexity task over a text file that `meap eval --tasks ppl
--text` also reads. Checks:
  - lm-eval's acc equals meap's accuracy on every task, and per item the same choice wins
    and the gold choice's log-likelihood agrees within 1e-4 (fp32 on both sides);
  - lm-eval's bits_per_byte on the text (its defaults) equals meap's ppl bits_per_byte
    (same windows, same start token);
  - with lm-eval's defaults the start token it uses (prefix_token_id) is the export's
    declared BOS, which is EOS: the token every training document follows.
Exits 77 (skipped by ctest) when lm_eval is not installed (scripts/install_deps.sh installs it).
"""
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from license_corpus import prepare_license_corpus  # noqa: E402
from checks import check, failures, run  # noqa: E402

MEAP, WORK = sys.argv[1], sys.argv[2]
LL_LIMIT = 1e-4

# Offline: nothing may be downloaded (the tasks and the model are local files).
for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_EVALUATE_OFFLINE"):
    os.environ[var] = "1"
os.environ["HF_HOME"] = os.path.join(WORK, "hf_home")
os.environ["HF_DATASETS_CACHE"] = os.path.join(WORK, "hf_home", "datasets")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

try:
    import lm_eval  # noqa: F401
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
except ImportError as e:
    print(f"SKIP: lm_eval not importable ({e}); run scripts/install_deps.sh")
    sys.exit(77)


CHOICE_TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: multiple_choice
doc_to_text: context
doc_to_choice: choices
doc_to_target: gold
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""

ROLLING_TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: text
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
"""


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    _, data = prepare_license_corpus(MEAP, WORK)
    run_dir = os.path.join(WORK, "run")
    cfg = os.path.join(WORK, "tiny.yaml")
    with open(cfg, "w") as f:
        f.write(f"""run: {{name: lm-eval-check, out_dir: {run_dir}, seed: 3}}
model: {{vocab_size: 400, dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 128,
        max_seq_len: 256}}
data: {{train: {data}/train-*.bin, val: {data}/val-*.bin, tokenizer: {data}/tokenizer.model,
       seq_len: 256, meap: {{mask_ratio: 0.15}}}}
optim: {{lr: 3.0e-3, min_lr: 3.0e-4, warmup_steps: 2}}
train: {{global_batch_size: 8, micro_batch_size: 8, max_steps: 20, device: cpu}}
checkpoint: {{interval: 20}}
eval: {{interval: 20, steps: 1}}
log: {{interval: 5}}
""")
    run(MEAP, "train", cfg)
    export = os.path.join(WORK, "hf")
    run(MEAP, "export", run_dir, "--out", export)

    # One text document for the rolling perplexity: a license text of several windows.
    text_path = os.path.join(WORK, "doc.txt")
    with open("/usr/share/common-licenses/Apache-2.0", encoding="utf-8") as f:
        text = f.read()[:3000]
    with open(text_path, "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(WORK, "doc.jsonl"), "w", encoding="utf-8") as f:
        f.write(json.dumps({"text": text}) + "\n")

    items = os.path.join(WORK, "items")
    results_path = os.path.join(WORK, "meap.json")
    run(MEAP, "eval", run_dir, "--tasks", "niah,mdqa,ppl", "--niah-lengths", "192,256",
        "--niah-depths", "0,0.5,1", "--niah-samples", "2", "--mdqa-documents", "3",
        "--mdqa-samples", "4", "--no-greedy", "--text", text_path, "--items-dir", items,
        "--out", results_path, "--no-progress")
    ours = json.load(open(results_path))["tasks"]

    tasks_dir = os.path.join(WORK, "tasks")
    os.makedirs(tasks_dir)
    for name in ("niah", "mdqa"):
        with open(os.path.join(tasks_dir, f"meap_{name}.yaml"), "w") as f:
            f.write(CHOICE_TASK.format(name=f"meap_{name}",
                                       path=os.path.join(items, f"{name}-items.jsonl")))
    with open(os.path.join(tasks_dir, "meap_text.yaml"), "w") as f:
        f.write(ROLLING_TASK.format(name="meap_text", path=os.path.join(WORK, "doc.jsonl")))

    # The defaults: the start token lm-eval uses is the export's declared BOS = EOS (id 2).
    lm_default = HFLM(pretrained=export, dtype="float32", device="cpu", batch_size=1)
    check(lm_default.prefix_token_id == 2 and lm_default.tokenizer.bos_token_id == 2,
          f"lm-eval's default start token is EOS (prefix_token_id {lm_default.prefix_token_id})")
    del lm_default

    # meap eval starts every context with that token too; add_bos_token=True makes lm-eval
    # do the same for non-empty contexts (its default leaves them without a start token).
    manager = TaskManager(include_path=tasks_dir)
    out = simple_evaluate(model="hf",
                          model_args=f"pretrained={export},dtype=float32,add_bos_token=True",
                          tasks=["meap_niah", "meap_mdqa"], device="cpu", batch_size=1,
                          log_samples=True, task_manager=manager)
    for name in ("niah", "mdqa"):
        acc = out["results"][f"meap_{name}"]["acc,none"]
        mine = ours[name]["overall"]["accuracy"]
        check(abs(acc - mine) < 1e-9,
              f"{name}: lm-eval acc {acc:.4f} equals meap eval's accuracy {mine:.4f} "
              f"({ours[name]['overall']['n']} items)")
        by_id = {it["id"]: it for it in ours[name]["items"]}
        worst, same = 0.0, True
        for s in out["samples"][f"meap_{name}"]:
            lls = [r[0] for r in s["filtered_resps"]]
            mine_item = by_id[s["doc"]["id"]]
            worst = max(worst, abs(lls[s["doc"]["gold"]] - mine_item["gold_log_likelihood"]))
            same = same and max(range(len(lls)), key=lambda i: (lls[i], -i)) == mine_item["predicted"]
        check(worst <= LL_LIMIT and same,
              f"{name}: per item the same choice wins and the gold log-likelihoods agree "
              f"(max |diff| {worst:.2e}, limit {LL_LIMIT:.0e})")
    # Rolling perplexity with lm-eval's defaults: windows start with its prefix token (EOS).
    rolling = simple_evaluate(model="hf", model_args=f"pretrained={export},dtype=float32",
                              tasks=["meap_text"], device="cpu", batch_size=1,
                              task_manager=manager)
    bpb = rolling["results"]["meap_text"]["bits_per_byte,none"]
    mine = ours["ppl"]["bits_per_byte"]
    check(abs(bpb - mine) <= 1e-4 * mine,
          f"ppl: lm-eval bits_per_byte {bpb:.5f} equals meap eval's {mine:.5f} "
          f"({ours['ppl']['tokens']} tokens, {ours['ppl']['windows']} windows)")

    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("all checks passed")


main()
