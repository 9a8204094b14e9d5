#include "meap/train/checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "meap/core/checksum.hpp"
#include "meap/core/file_io.hpp"
#include "meap/train/config.hpp"
#include "meap/model/llama_io.hpp"
#include "meap/core/safetensors.hpp"

namespace fs = std::filesystem;

namespace meap {

namespace {

constexpr const char* kFormat = "meap-checkpoint";
// 2: file checksums and the manifest's own checksum (version 1 loads, unverified).
constexpr int kVersion = 2;

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08ld", static_cast<long>(step));
  return buf;
}

std::string read_text(const fs::path& path, uint64_t max_bytes, std::string_view what) {
  return read_small_file(path.string(), max_bytes, what);
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

// t (f32 or f64, any device) into host floats: checkpoints store moments in f32.
void copy_to_host_f32(Backend& backend, float* host, const Tensor& t) {
  if (t.dtype == DType::f32) {
    backend.copy_to_host(host, t);
  } else {
    std::vector<double> d(t.numel());
    backend.copy_to_host(d.data(), t);
    std::copy(d.begin(), d.end(), host);
  }
}

void copy_from_host_f32(Backend& backend, const Tensor& t, const float* host) {
  if (t.dtype == DType::f32) {
    backend.copy_from_host(t, host);
  } else {
    std::vector<double> d(host, host + t.numel());
    backend.copy_from_host(t, d.data());
  }
}

int64_t metadata_int(const SafetensorsFile& f, const std::string& key) {
  const auto it = f.metadata().find(key);
  if (it == f.metadata().end()) fail(f.path(), " has no '", key, "' metadata");
  try {
    size_t used = 0;
    const long long x = std::stoll(it->second, &used);
    if (used != it->second.size() || x < 0) throw std::invalid_argument("");
    return x;
  } catch (const std::exception&) {
    fail(f.path(), ": metadata ", key, "='", it->second, "' is not a non-negative integer");
  }
}

void add_moments(SafetensorsWriter& w, const Llama& model, const Tensor& m, const Tensor& v) {
  std::vector<float> host;
  for (const NamedParameter& p : model.parameters()) {
    for (const auto& [prefix, flat] : {std::pair{"m.", &m}, std::pair{"v.", &v}}) {
      // The parameter's shape at its offset, in the moments' dtype (f32 for a bf16 model).
      Tensor view = p.master;
      view.dtype = flat->dtype;
      view.data = static_cast<char*>(flat->data) + p.offset * dtype_size(flat->dtype);
      host.resize(view.numel());
      copy_to_host_f32(model.backend(), host.data(), view);
      w.add(prefix + p.name, DType::f32,
            std::vector<int64_t>(view.shape.begin(), view.shape.begin() + view.ndim),
            host.data());
    }
  }
}

}  // namespace

std::string checkpoint_staging_dir(const std::string& run_dir, int64_t step) {
  return (fs::path(run_dir) / "checkpoints" / (".tmp-" + step_name(step))).string();
}

namespace {

// Runs one step of writing a checkpoint. A failure (a full disk, a read-only remount)
// removes the step's temporary directory -- the space it took is given back, and `latest`
// still names the previous checkpoint -- and becomes a meap::Error naming the path (a
// std::filesystem error would otherwise read as an internal error).
template <class F>
auto staging_step(const std::string& run_dir, int64_t step, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (...) {
    std::error_code ec;
    fs::remove_all(checkpoint_staging_dir(run_dir, step), ec);
    try {
      throw;
    } catch (const fs::filesystem_error& e) {
      fail(e.what());
    }
  }
}

}  // namespace

std::string begin_checkpoint(const std::string& run_dir, int64_t step) {
  return staging_step(run_dir, step, [&] {
    fs::create_directories(fs::path(run_dir) / "checkpoints");
    const fs::path tmp = checkpoint_staging_dir(run_dir, step);
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    return tmp.string();
  });
}

std::string save_checkpoint(const std::string& run_dir, const CheckpointManifest& manifest,
                            const CheckpointTensors& tensors, const std::string& tokenizer_path,
                            int keep_last) {
  begin_checkpoint(run_dir, manifest.step);
  return commit_checkpoint(run_dir, manifest, tensors, tokenizer_path, keep_last);
}

std::string moment_shard_file_name(int rank, int world_size) {
  return "optim-rank" + std::to_string(rank) + "-of-" + std::to_string(world_size) +
         ".safetensors";
}

void write_moment_shard(const std::string& staging_dir, int rank, int world_size,
                        int64_t offset, const Tensor& m, const Tensor& v, Backend& backend) {
  MEAP_CHECK(m.numel() == v.numel() && m.dtype == v.dtype, "moment shards differ");
  SafetensorsWriter w;
  w.set_metadata("format", "meap-adamw-shard");
  w.set_metadata("offset", std::to_string(offset));
  w.set_metadata("length", std::to_string(m.numel()));
  w.set_metadata("rank", std::to_string(rank));
  w.set_metadata("world_size", std::to_string(world_size));
  std::vector<float> host(m.numel());
  for (const auto& [name, t] : {std::pair{"m", &m}, std::pair{"v", &v}}) {
    copy_to_host_f32(backend, host.data(), *t);
    w.add(name, DType::f32, {t->numel()}, host.data());
  }
  w.write((fs::path(staging_dir) / moment_shard_file_name(rank, world_size)).string());
}

void write_checkpoint_manifest(const std::string& checkpoint_dir,
                               const CheckpointManifest& manifest) {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& e : fs::directory_iterator(checkpoint_dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && name != "manifest.json" && name[0] != '.')
      files[name] = file_checksum(e.path().string());
  }
  nlohmann::json j = {
      {"format", kFormat},
      {"version", kVersion},
      {"step", manifest.step},
      {"tokens_seen", manifest.tokens_seen},
      {"streamer", {{"epoch", manifest.streamer.epoch}, {"batch", manifest.streamer.batch}}},
      {"world_size", manifest.world_size},
      {"zero1", manifest.zero1},
      {"seed", manifest.seed},
      {"train_loss", manifest.train_loss},
      {"config", manifest.config_yaml},
      {"config_changes", manifest.config_changes},
      {"files", files}};
  // The checksum of the manifest itself: of its compact dump without this key (keys are
  // sorted, so the dump is canonical).
  const std::string body = j.dump();
  j["checksum"] = bytes_checksum(body.data(), body.size());
  write_file_atomic((fs::path(checkpoint_dir) / "manifest.json").string(), j.dump(2) + "\n");
}

void verify_checkpoint_file(const std::string& checkpoint_dir, const CheckpointManifest& manifest,
                            const std::string& name) {
  const std::string path = (fs::path(checkpoint_dir) / name).string();
  if (manifest.version < 2) {
    spdlog::warn("{} was written by a meap without checksums (manifest version {}): loading {} "
                 "unverified", checkpoint_dir, manifest.version, name);
    return;
  }
  const auto it = manifest.files.find(name);
  if (it == manifest.files.end())
    fail(checkpoint_dir, "/manifest.json records no checksum for ", name,
         ": the file was not part of the checkpoint when it was written");
  verify_file_checksum(path, it->second, "a checkpoint file");
}

namespace {

std::string commit_checkpoint_files(const std::string& run_dir, const CheckpointManifest& manifest,
                                    const CheckpointTensors& tensors,
                                    const std::string& tokenizer_path, int keep_last) {
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  const std::string name = step_name(manifest.step);
  const fs::path tmp = checkpoint_staging_dir(run_dir, manifest.step);
  const fs::path final_dir = dir / name;
  MEAP_CHECK(fs::is_directory(tmp), "commit_checkpoint without begin_checkpoint: no ",
             tmp.string());

  save_llama_weights(*tensors.model, (tmp / "model.safetensors").string());
  if (!tensors.m.empty()) {
    SafetensorsWriter w;
    w.set_metadata("format", "meap-adamw");
    add_moments(w, *tensors.model, tensors.m, tensors.v);
    w.write((tmp / "optim.safetensors").string());
  }
  if (!tokenizer_path.empty()) {
    copy_file_durable(tokenizer_path, (tmp / "tokenizer.model").string());
  }
  write_checkpoint_manifest(tmp.string(), manifest);
  fsync_directory(tmp.string());

  // Replacing a checkpoint of the same step (a resumed run reaching it again): the old one
  // stays complete until the new one is in place.
  const fs::path old = dir / (".old-" + name);
  fs::remove_all(old);
  if (fs::exists(final_dir)) fs::rename(final_dir, old);
  fs::rename(tmp, final_dir);
  fsync_directory(dir.string());
  fs::remove_all(old);

  write_file_atomic((dir / "latest").string(), name + "\n");
  fsync_directory(dir.string());

  // Prune the oldest, never the one just written. A directory is first renamed to a
  // dot-name, so a kill inside remove_all leaves no half-deleted step-* behind; leftovers
  // of earlier kills (.tmp-*, .old-*, .trash-*) are swept here, and so is a step-* without a
  // manifest older than the one just written (damaged, and past pruning anyway); a newer
  // one is left for the user to look at.
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
        (entry.rfind("step-", 0) == 0 && entry < name && e.is_directory() &&
         !fs::exists(e.path() / "manifest.json")))
      leftovers.push_back(e.path());
  }
  for (const fs::path& p : leftovers) fs::remove_all(p);
  return final_dir.string();
}

}  // namespace

std::string commit_checkpoint(const std::string& run_dir, const CheckpointManifest& manifest,
                              const CheckpointTensors& tensors, const std::string& tokenizer_path,
                              int keep_last) {
  return staging_step(run_dir, manifest.step, [&] {
    return commit_checkpoint_files(run_dir, manifest, tensors, tokenizer_path, keep_last);
  });
}

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  const fs::path pointer = dir / "latest";
  const auto all = complete_checkpoints(dir);
  if (fs::exists(pointer)) {
    // A pointer meap wrote is "step-XXXXXXXX\n"; anything else was damaged from outside.
    std::string name;
    if (fs::is_regular_file(pointer) && fs::file_size(pointer) <= 64)
      name = read_text(pointer, kMaxPointerBytes, "checkpoint pointer");
    name.erase(name.find_last_not_of(" \n\r\t") + 1);
    const bool well_formed = name.size() == 13 && name.rfind("step-", 0) == 0 &&
                             name.find_first_not_of("0123456789", 5) == std::string::npos;
    if (!well_formed)
      fail(pointer.string(), " is damaged (it should be a one-line file naming a checkpoint "
           "such as step-00000100); remove it to use the newest complete checkpoint (",
           all.empty() ? std::string("there is none") : all.back().second.filename().string(),
           "), or write the name of the one to resume into it");
    if (fs::exists(dir / name / "manifest.json")) return (dir / name).string();
    spdlog::warn("{} names {}, which is not a complete checkpoint; using the newest complete "
                 "one instead", pointer.string(), name);
  }
  if (all.empty()) return std::nullopt;
  return all.back().second.string();
}

std::vector<std::string> incomplete_checkpoints(const std::string& run_dir) {
  std::vector<std::string> out;
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) == 0 && !fs::exists(e.path() / "manifest.json"))
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string load_initial_weights(const std::string& path, Llama& model) {
  const std::string from = resolve_checkpoint_dir(path);
  const Config source =
      parse_config(read_checkpoint_manifest(from).config_yaml, {}, from + "/manifest.json");
  ModelConfig shape = source.model;
  shape.init_std = model.config().init_std;  // only the initialisation, which is skipped
  // No weight depends on the longest sequence (RoPE tables are computed), so a fine-tuning
  // run may use longer rows than pre-training did.
  shape.max_seq_len = model.config().max_seq_len;
  if (shape != model.config())
    fail("checkpoint.init_from: ", from, " holds a model of another shape than this config's "
         "model section (copy its model section: ", from, "/manifest.json)");
  load_checkpoint_tensors(from, model, Tensor{}, Tensor{});
  return from;
}

std::string resolve_checkpoint_dir(const std::string& path) {
  if (!fs::is_directory(path)) fail(path, " is not a directory (expected a checkpoint or run dir)");
  if (fs::exists(fs::path(path) / "manifest.json")) return path;
  if (auto latest = latest_checkpoint(path)) return *latest;
  fail(path, " is neither a checkpoint (no manifest.json) nor a run directory with a complete "
       "checkpoint (no checkpoints/step-*/manifest.json)");
}

CheckpointManifest read_checkpoint_manifest(const std::string& checkpoint_dir) {
  const fs::path path = fs::path(checkpoint_dir) / "manifest.json";
  if (!fs::exists(path))
    fail(checkpoint_dir, " is not a meap checkpoint (no manifest.json)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text(path, kMaxManifestBytes, "checkpoint manifest"));
    if (j.at("format") != kFormat) fail(path.string(), " is not a meap checkpoint manifest");
    if (j.at("version").get<int>() > kVersion)
      fail(path.string(), " was written by a newer meap (version ", j.at("version").get<int>(),
           ")");
    CheckpointManifest m;
    m.version = j.at("version").get<int>();
    if (m.version >= 2) {
      nlohmann::json body = j;
      body.erase("checksum");
      const std::string dump = body.dump();
      if (j.at("checksum").get<std::string>() != bytes_checksum(dump.data(), dump.size()))
        fail(path.string(), " is corrupt: its content does not match its checksum; restore it "
             "from a copy, or use another checkpoint");
      m.files = j.at("files").get<std::map<std::string, std::string>>();
      m.config_changes = j.at("config_changes").get<std::vector<std::string>>();
    }
    m.step = j.at("step").get<int64_t>();
    m.tokens_seen = j.at("tokens_seen").get<uint64_t>();
    m.streamer.epoch = j.at("streamer").at("epoch").get<uint64_t>();
    m.streamer.batch = j.at("streamer").at("batch").get<uint64_t>();
    m.world_size = j.at("world_size").get<int>();
    m.zero1 = j.value("zero1", false);  // absent in checkpoints from before ZeRO-1
    m.seed = j.at("seed").get<uint64_t>();
    m.train_loss = j.at("train_loss").get<double>();
    m.config_yaml = j.at("config").get<std::string>();
    return m;
  } catch (const nlohmann::json::exception& e) {
    fail(path.string(), " is malformed: ", e.what());
  }
}

void load_checkpoint_tensors(const std::string& checkpoint_dir, Llama& model, const Tensor& m,
                             const Tensor& v, int64_t moments_offset) {
  const fs::path dir(checkpoint_dir);
  const CheckpointManifest man = read_checkpoint_manifest(checkpoint_dir);
  verify_checkpoint_file(checkpoint_dir, man, "model.safetensors");
  load_llama_weights(model, (dir / "model.safetensors").string());
  if (m.empty()) return;
  MEAP_CHECK(m.numel() == v.numel() && moments_offset >= 0, "moment buffers differ");
  // This rank's range [lo, hi) of the flat layout, staged on the host in f32; whatever no
  // source covers (alignment gaps, padding) stays zero.
  const int64_t lo = moments_offset, hi = moments_offset + m.numel();
  std::vector<float> host_m(m.numel(), 0.0f), host_v(m.numel(), 0.0f);
  const auto copy_overlap = [&](int64_t src_begin, int64_t src_length, const void* src_m,
                                const void* src_v) {
    const int64_t b = std::max(lo, src_begin), e = std::min(hi, src_begin + src_length);
    if (b >= e) return;
    const size_t bytes = (e - b) * sizeof(float);
    std::memcpy(host_m.data() + (b - lo), static_cast<const char*>(src_m) + (b - src_begin) * 4,
                bytes);
    std::memcpy(host_v.data() + (b - lo), static_cast<const char*>(src_v) + (b - src_begin) * 4,
                bytes);
  };
  if (!man.zero1) {
    // One file, per named tensor: each parameter's overlap with the range.
    const std::string optim = (dir / "optim.safetensors").string();
    if (!fs::exists(optim)) fail(checkpoint_dir, " has no optimizer state (optim.safetensors)");
    verify_checkpoint_file(checkpoint_dir, man, "optim.safetensors");
    const SafetensorsFile file = SafetensorsFile::open(optim);
    for (const NamedParameter& p : model.parameters()) {
      const std::vector<int64_t> shape(p.value.shape.begin(),
                                       p.value.shape.begin() + p.value.ndim);
      for (const char* prefix : {"m.", "v."}) {
        const SafetensorsTensorInfo& info = file.info(prefix + p.name);
        if (info.dtype != DType::f32 || info.shape != shape)
          fail(optim, ": tensor '", info.name, "' is ", dtype_name(info.dtype), " ",
               info.shape.size(), "-d, expected f32 of the shape of ", p.name);
      }
      copy_overlap(p.offset, p.value.numel(), file.data("m." + p.name),
                   file.data("v." + p.name));
    }
  } else {
    // The flat shards of the world size that wrote it: they tile [0, W * length).
    int64_t expected_offset = 0;
    for (int r = 0; r < man.world_size; ++r) {
      const fs::path path = dir / moment_shard_file_name(r, man.world_size);
      if (!fs::exists(path))
        fail(checkpoint_dir, " was written with dist.zero1 on ", man.world_size,
             " ranks but lacks ", path.filename().string());
      verify_checkpoint_file(checkpoint_dir, man, path.filename().string());
      const SafetensorsFile file = SafetensorsFile::open(path.string());
      const int64_t offset = metadata_int(file, "offset"), length = metadata_int(file, "length");
      if (metadata_int(file, "world_size") != man.world_size || metadata_int(file, "rank") != r ||
          offset != expected_offset)
        fail(path.string(), " is not shard ", r, " of ", man.world_size, " starting at element ",
             expected_offset, " (metadata rank ", file.metadata().at("rank"), ", offset ",
             offset, ")");
      for (const char* name : {"m", "v"}) {
        const SafetensorsTensorInfo& info = file.info(name);
        if (info.dtype != DType::f32 || info.shape != std::vector<int64_t>{length})
          fail(path.string(), ": tensor '", name, "' must be f32 of ", length, " elements");
      }
      expected_offset += length;
      if (offset >= hi || offset + length <= lo) continue;
      copy_overlap(offset, length, file.data("m"), file.data("v"));
    }
    const NamedParameter& last = model.parameters().back();
    if (expected_offset < last.offset + last.value.numel())
      fail(checkpoint_dir, ": the moment shards cover ", expected_offset,
           " elements, fewer than the model's ", last.offset + last.value.numel());
  }
  copy_from_host_f32(model.backend(), m.reshaped({m.numel()}), host_m.data());
  copy_from_host_f32(model.backend(), v.reshaped({v.numel()}), host_v.data());
}

}  // namespace meap
