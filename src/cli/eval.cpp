// `meap eval CHECKPOINT_OR_RUN_DIR --tasks ppl,niah,mdqa,attn [--out results.json]`:
// the paper's evaluations on a trained checkpoint (docs/eval.md).
#include <cstdio>
#include <string>

#include "cli/command_line.hpp"
#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"
#include "meap/eval/eval_runner.hpp"

namespace meap::cli {

int eval_command(const Args& args) {
  EvalOptions o;
  std::string out, niah_ask = "one";
  bool no_progress = false, no_greedy = false;
  o.tasks = {"ppl"};
  o.attn.mask_ratio = -1;

  CommandLine cli(
      "meap eval",
      "Evaluates a checkpoint (or a run directory's latest checkpoint): perplexity and bits\n"
      "per byte, needle in a haystack, multi-document QA, attention analysis.",
      "Results as JSON (--out) and a table on stdout; progress on stderr. Deterministic\n"
      "given --seed. See docs/eval.md.");
  CLI::App& app = cli.app();
  cli.add_checkpoint(o.checkpoint);
  app.add_option("--tasks", o.tasks, "comma-separated: ppl, niah, mdqa, attn (default ppl)")
      ->delimiter(',');
  app.add_option("--out", out, "write the results JSON here");
  app.add_option("--seed", o.seed, "seed of every generated item and mask (default 1)");
  cli.add_device(o.device);
  app.add_option("--tokenizer", o.tokenizer,
                 "SentencePiece model or tokenizer.json (default the checkpoint's, else "
                 "data.tokenizer)");
  app.add_option("--batch-size", o.batch_size, "sequences per forward (default 8)");
  app.add_flag("--no-progress", no_progress, "no progress lines on stderr");
  app.add_flag("--no-greedy", no_greedy, "skip greedy generation (log-likelihood scoring only)");
  app.add_option("--text", o.text,
                 "token shards (*.bin, globs) or text files for ppl, NIAH haystacks and attn "
                 "(default: the run's data.val)")
      ->delimiter(',');
  app.add_option("--max-text-tokens", o.max_text_tokens, "read at most N tokens of text (0 = all)");
  app.add_option("--ppl-seq-len", o.ppl_seq_len, "ppl window (default max_seq_len)");
  app.add_option("--niah-lengths", o.niah.lengths,
                 "context lengths in tokens (default max_seq_len x 1/4, 1/2, 3/4, 1, those long "
                 "enough for the needles and question)")
      ->delimiter(',');
  app.add_option("--niah-depths", o.niah.depths, "needle depths in [0, 1] (default 0,.25,.5,.75,1)")
      ->delimiter(',');
  app.add_option("--niah-samples", o.niah.samples, "items per (length, depth) cell (default 2)");
  app.add_option("--niah-needles", o.niah.needles, "needles per haystack (default 1)");
  app.add_option("--niah-ask", niah_ask, "one | all: ask for needle 1 or every value")
      ->check(CLI::IsMember({"one", "all"}));
  app.add_option("--niah-candidates", o.niah.candidates, "choices per item (default 10)");
  app.add_option("--niah-digits", o.niah.digits, "digits of each value (default 5)");
  app.add_option("--mdqa-documents", o.mdqa.documents, "documents per item, k (default 5)");
  app.add_option("--mdqa-samples", o.mdqa.samples,
                 "questions; each is asked with the gold document at every position (default 4)");
  app.add_option("--mdqa-jsonl", o.mdqa_jsonl, "lost-in-the-middle JSONL instead of synthetic");
  app.add_option("--mdqa-candidates", o.mdqa.candidates, "JSONL: choices per item (default k)");
  app.add_option("--attn-sequences", o.attn.sequences, "sequences analysed (default 4)");
  app.add_option("--attn-seq-len", o.attn.seq_len, "their length (default max_seq_len)");
  app.add_option("--attn-mask-ratio", o.attn.mask_ratio,
                 "P of the masked run (default the run's data.meap.mask_ratio, or 0.15)");
  app.add_option("--attn-span-items", o.attn_span_items, "NIAH prompts for the needle share (default 4)");
  app.add_option("--items-dir", o.items_dir, "write the scored items as DIR/TASK-items.jsonl");

  if (const auto done = cli.parse(args)) return *done;
  o.progress = !no_progress;
  o.greedy = !no_greedy;
  o.niah.ask_all = niah_ask == "all";

  const nlohmann::json results = run_eval(o);
  std::fputs(results_table(results).c_str(), stdout);
  std::fflush(stdout);
  if (!out.empty()) {
    write_file_atomic(out, results.dump(2) + "\n");
    std::fprintf(stderr, "meap eval: results written to %s\n", out.c_str());
  }
  return 0;
}

}  // namespace meap::cli
