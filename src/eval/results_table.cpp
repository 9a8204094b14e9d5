// results_table: the results document as the plain-text summary `meap eval` prints.
#include <cstdio>
#include <string>

#include "meap/eval/eval_runner.hpp"

namespace meap {

namespace {

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string pct(double v) { return fmt("%5.1f%%", 100.0 * v); }

// One line per accuracy group: the label, n, log-likelihood accuracy, greedy EM, mean rank.
std::string accuracy_line(const std::string& label, const nlohmann::json& a) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "  %-22s %5ld  %s  %s  %5.2f  %s\n", label.c_str(),
                a.at("n").get<long>(), pct(a.at("accuracy").get<double>()).c_str(),
                pct(a.at("greedy_em").get<double>()).c_str(), a.at("mean_rank").get<double>(),
                pct(a.at("chance").get<double>()).c_str());
  return buf;
}

std::string accuracy_header(const std::string& first) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "  %-22s %5s  %6s  %6s  %5s  %6s\n", first.c_str(), "n",
                "acc", "greedy", "rank", "chance");
  return buf;
}

}  // namespace

std::string results_table(const nlohmann::json& r) {
  std::string s = "meap eval: " + r.at("checkpoint").get<std::string>() + " (step " +
                  std::to_string(r.at("step").get<int64_t>()) + ", seed " +
                  std::to_string(r.at("seed").get<uint64_t>()) + ")\n";
  const nlohmann::json& tasks = r.at("tasks");
  if (tasks.contains("ppl")) {
    const nlohmann::json& p = tasks["ppl"];
    s += "\nppl: " + std::to_string(p["tokens"].get<int64_t>()) + " tokens, " +
         std::to_string(p["bytes"].get<int64_t>()) + " bytes\n";
    s += "  loss " + fmt("%.4f", p["loss"].get<double>()) + "  perplexity " +
         fmt("%.3f", p["perplexity"].get<double>()) + "  bits/byte " +
         fmt("%.4f", p["bits_per_byte"].get<double>()) + "\n";
  }
  if (tasks.contains("niah")) {
    const nlohmann::json& n = tasks["niah"];
    s += "\nniah: " + std::to_string(n["needles"].get<int64_t>()) + " needle(s), ask " +
         n["ask"].get<std::string>() + ", " + std::to_string(n["candidates"].get<int64_t>()) +
         " candidates\n";
    s += accuracy_header("length x depth");
    for (const auto& c : n["cells"])
      s += accuracy_line(std::to_string(c["length"].get<int64_t>()) + " x " +
                             fmt("%.2f", c["depth"].get<double>()),
                         c);
    s += accuracy_line("overall", n["overall"]);
  }
  if (tasks.contains("mdqa")) {
    const nlohmann::json& m = tasks["mdqa"];
    s += "\nmdqa: " + m["source"].get<std::string>() + ", " +
         std::to_string(m["documents"].get<int64_t>()) + " documents\n";
    s += accuracy_header("gold position");
    for (const auto& c : m["by_position"])
      s += accuracy_line(std::to_string(c["position"].get<int64_t>()), c);
    s += accuracy_line("overall", m["overall"]);
  }
  if (tasks.contains("attn")) {
    const nlohmann::json& a = tasks["attn"];
    const bool span = a["span_items"].get<int64_t>() > 0;
    s += "\nattn: " + std::to_string(a["sequences"].get<int64_t>()) + " sequences of " +
         std::to_string(a["seq_len"].get<int64_t>()) + ", mask ratio " +
         fmt("%.2f", a["mask_ratio"].get<double>()) + "\n";
    char buf[200];
    std::snprintf(buf, sizeof buf, "  %-8s %12s %12s %8s %12s %12s %8s%s\n", "layer",
                  "recv masked", "recv clean", "change", "var masked", "var clean", "change",
                  span ? "   needle share (uniform)" : "");
    s += buf;
    const auto line = [&](const std::string& label, const nlohmann::json& l) {
      std::snprintf(buf, sizeof buf, "  %-8s %12.5f %12.5f %7.1f%% %12.3e %12.3e %7.1f%%",
                    label.c_str(), l["received_masked"].get<double>(),
                    l["received_clean"].get<double>(), 100 * l["received_change"].get<double>(),
                    l["variance_masked"].get<double>(), l["variance_clean"].get<double>(),
                    100 * l["variance_change"].get<double>());
      s += buf;
      if (span)
        s += "   " + pct(l["span_share"].get<double>()) + " (" +
             pct(l["span_share_uniform"].get<double>()) + ")";
      s += "\n";
    };
    for (const auto& l : a["layers"]) line(std::to_string(l["layer"].get<int64_t>()), l);
    line("mean", a["overall"]);
  }
  return s;
}

}  // namespace meap
