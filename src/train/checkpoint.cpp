#include "meap/checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "meap/llama_io.hpp"

namespace fs = std::filesystem;

namespace meap {

namespace {

constexpr const char* kFormat = "meap-checkpoint";
constexpr int kVersion = 1;

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08ld", static_cast<long>(step));
  return buf;
}

void fsync_path(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) fail("cannot open ", p.string(), " to fsync: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && !(directory && err == EINVAL))
    fail("fsync of ", p.string(), " failed: ", std::strerror(err));
}

// Writes text to path through a temporary file, fsynced, then renamed.
void write_file_atomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) fail("cannot write ", tmp.string(), ": ", std::strerror(errno));
  }
  fsync_path(tmp, false);
  fs::rename(tmp, path);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read ", path.string());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  if (!fs::is_directory(dir)) return found;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name.rfind("step-", 0) != 0) continue;
    if (!fs::exists(e.path() / "manifest.json")) continue;
    try {
      found.emplace_back(std::stoll(name.substr(5)), e.path());
    } catch (const std::exception&) {
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

void add_moments(SafetensorsWriter& w, const Llama& model, const Tensor& m, const Tensor& v) {
  std::vector<float> host;
  for (const NamedParameter& p : model.parameters()) {
    for (const auto& [prefix, flat] : {std::pair{"m.", &m}, std::pair{"v.", &v}}) {
      Tensor view = p.value;
      view.data = static_cast<char*>(flat->data) + p.offset * dtype_size(flat->dtype);
      host.resize(view.numel());
      if (view.dtype == DType::f32) {
        model.backend().copy_to_host(host.data(), view);
      } else {
        std::vector<double> d(view.numel());
        model.backend().copy_to_host(d.data(), view);
        std::copy(d.begin(), d.end(), host.begin());
      }
      w.add(prefix + p.name, DType::f32,
            std::vector<int64_t>(view.shape.begin(), view.shape.begin() + view.ndim),
            host.data());
    }
  }
}

}  // namespace

std::string save_checkpoint(const std::string& run_dir, const CheckpointManifest& manifest,
                            const CheckpointTensors& tensors, const std::string& tokenizer_path,
                            int keep_last) {
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  fs::create_directories(dir);
  const std::string name = step_name(manifest.step);
  const fs::path tmp = dir / (".tmp-" + name);
  const fs::path final_dir = dir / name;
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  save_llama_weights(*tensors.model, (tmp / "model.safetensors").string());
  if (!tensors.m.empty()) {
    SafetensorsWriter w;
    w.set_metadata("format", "meap-adamw");
    add_moments(w, *tensors.model, tensors.m, tensors.v);
    w.write((tmp / "optim.safetensors").string());
  }
  if (!tokenizer_path.empty()) {
    fs::copy_file(tokenizer_path, tmp / "tokenizer.model");
    fsync_path(tmp / "tokenizer.model", false);
  }
  const nlohmann::json j = {
      {"format", kFormat},
      {"version", kVersion},
      {"step", manifest.step},
      {"tokens_seen", manifest.tokens_seen},
      {"streamer", {{"epoch", manifest.streamer.epoch}, {"batch", manifest.streamer.batch}}},
      {"world_size", manifest.world_size},
      {"seed", manifest.seed},
      {"train_loss", manifest.train_loss},
      {"config", manifest.config_yaml}};
  write_file_atomic(tmp / "manifest.json", j.dump(2) + "\n");
  fsync_path(tmp, true);

  // Replacing a checkpoint of the same step (a resumed run reaching it again): the old one
  // stays complete until the new one is in place.
  const fs::path old = dir / (".old-" + name);
  fs::remove_all(old);
  if (fs::exists(final_dir)) fs::rename(final_dir, old);
  fs::rename(tmp, final_dir);
  fsync_path(dir, true);
  fs::remove_all(old);

  write_file_atomic(dir / "latest", name + "\n");
  fsync_path(dir, true);

  // Prune the oldest, never the one just written. A directory is first renamed to a
  // dot-name, so a kill inside remove_all leaves no half-deleted step-* behind; leftovers
  // of earlier kills (.tmp-*, .old-*, .trash-*, step-* without a manifest) are swept here.
  auto all = complete_checkpoints(dir);
  for (size_t i = 0; i + keep_last < all.size(); ++i) {
    if (all[i].second == final_dir) continue;
    const fs::path trash = dir / (".trash-" + all[i].second.filename().string());
    fs::remove_all(trash);
    fs::rename(all[i].second, trash);
  }
  std::vector<fs::path> leftovers;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string entry = e.path().filename().string();
    if (entry.rfind(".tmp-", 0) == 0 || entry.rfind(".old-", 0) == 0 ||
        entry.rfind(".trash-", 0) == 0 ||
        (entry.rfind("step-", 0) == 0 && e.is_directory() &&
         !fs::exists(e.path() / "manifest.json")))
      leftovers.push_back(e.path());
  }
  for (const fs::path& p : leftovers) fs::remove_all(p);
  return final_dir.string();
}

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  if (fs::exists(dir / "latest")) {
    std::string name = read_text(dir / "latest");
    name.erase(name.find_last_not_of(" \n\r\t") + 1);
    if (!name.empty() && fs::exists(dir / name / "manifest.json")) return (dir / name).string();
  }
  const auto all = complete_checkpoints(dir);
  if (all.empty()) return std::nullopt;
  return all.back().second.string();
}

CheckpointManifest read_checkpoint_manifest(const std::string& checkpoint_dir) {
  const fs::path path = fs::path(checkpoint_dir) / "manifest.json";
  if (!fs::exists(path))
    fail(checkpoint_dir, " is not a meap checkpoint (no manifest.json)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text(path));
    if (j.at("format") != kFormat) fail(path.string(), " is not a meap checkpoint manifest");
    if (j.at("version").get<int>() > kVersion)
      fail(path.string(), " was written by a newer meap (version ", j.at("version").get<int>(),
           ")");
    CheckpointManifest m;
    m.step = j.at("step").get<int64_t>();
    m.tokens_seen = j.at("tokens_seen").get<uint64_t>();
    m.streamer.epoch = j.at("streamer").at("epoch").get<uint64_t>();
    m.streamer.batch = j.at("streamer").at("batch").get<uint64_t>();
    m.world_size = j.at("world_size").get<int>();
    m.seed = j.at("seed").get<uint64_t>();
    m.train_loss = j.at("train_loss").get<double>();
    m.config_yaml = j.at("config").get<std::string>();
    return m;
  } catch (const nlohmann::json::exception& e) {
    fail(path.string(), " is malformed: ", e.what());
  }
}

void load_checkpoint_tensors(const std::string& checkpoint_dir, Llama& model, const Tensor& m,
                             const Tensor& v) {
  const fs::path dir(checkpoint_dir);
  load_llama_weights(model, (dir / "model.safetensors").string());
  if (m.empty()) return;
  const std::string optim = (dir / "optim.safetensors").string();
  if (!fs::exists(optim)) fail(checkpoint_dir, " has no optimizer state (optim.safetensors)");
  const SafetensorsFile file = SafetensorsFile::open(optim);
  std::vector<float> host;
  for (const NamedParameter& p : model.parameters()) {
    for (const auto& [prefix, flat] : {std::pair{"m.", &m}, std::pair{"v.", &v}}) {
      Tensor view = p.value;
      view.data = static_cast<char*>(flat->data) + p.offset * dtype_size(flat->dtype);
      host.resize(view.numel());
      file.read(prefix + p.name, DType::f32,
                std::vector<int64_t>(view.shape.begin(), view.shape.begin() + view.ndim),
                host.data());
      if (view.dtype == DType::f32) {
        model.backend().copy_from_host(view, host.data());
      } else {
        std::vector<double> d(host.begin(), host.end());
        model.backend().copy_from_host(view, d.data());
      }
    }
  }
}

}  // namespace meap
