// meap's side of the export tests (tests/export/test_hf_export.py): our CPU forward's logits
// for a checkpoint, and our tokenizer's ids for a text, for Python to compare with
// transformers.
//   export_probe logits CHECKPOINT_DIR TOKENS.i32 B T OUT.f32   (raw little-endian arrays;
//                                                              OUT holds (B, T, V) logits)
//   export_probe encode TOKENIZER.model TEXT_FILE              (prints the ids, one line)
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "meap/backend/backend.hpp"
#include "meap/train/checkpoint.hpp"
#include "meap/train/config.hpp"
#include "meap/core/error.hpp"
#include "meap/model/llama.hpp"
#include "meap/data/tokenizer.hpp"

namespace {

int logits(const std::string& checkpoint, const std::string& tokens_path, int64_t B, int64_t T,
           const std::string& out_path) {
  const std::string dir = meap::resolve_checkpoint_dir(checkpoint);
  const meap::Config cfg =
      meap::parse_config(meap::read_checkpoint_manifest(dir).config_yaml, {}, dir);
  std::ifstream in(tokens_path, std::ios::binary);
  std::vector<int32_t> tokens(B * T);
  in.read(reinterpret_cast<char*>(tokens.data()), tokens.size() * 4);
  if (!in) meap::fail("cannot read ", B * T, " int32 tokens from ", tokens_path);

  auto backend = meap::make_backend(meap::DeviceChoice::cpu);
  meap::Llama model(cfg.model, *backend, B, T);
  meap::load_checkpoint_tensors(dir, model, meap::Tensor{}, meap::Tensor{});
  model.forward_logits(tokens.data(), B, T);
  const meap::Tensor l = model.logits();
  std::vector<float> host(l.numel());
  backend->copy_to_host(host.data(), l);
  std::ofstream out(out_path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(host.data()), host.size() * 4);
  return out ? 0 : 1;
}

int encode(const std::string& tokenizer, const std::string& text_path) {
  std::ifstream in(text_path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const meap::Tokenizer tok = meap::Tokenizer::load(tokenizer);
  for (int32_t id : tok.encode(text)) std::printf("%d ", id);
  std::printf("\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::vector<std::string> a(argv + 1, argv + argc);
    if (a.size() == 6 && a[0] == "logits")
      return logits(a[1], a[2], std::stoll(a[3]), std::stoll(a[4]), a[5]);
    if (a.size() == 3 && a[0] == "encode") return encode(a[1], a[2]);
    std::fprintf(stderr, "usage: export_probe logits CKPT TOKENS B T OUT | encode TOK TEXT\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "export_probe: %s\n", e.what());
    return 1;
  }
}
