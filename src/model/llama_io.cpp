#include "meap/model/llama_io.hpp"

#include <vector>

namespace meap {

namespace {

// A master view (f32, or f64 for a gradient-check model) as host f32.
std::vector<float> host_f32(const Llama& model, const Tensor& t) {
  std::vector<float> out(t.numel());
  if (t.dtype == DType::f32) {
    model.backend().copy_to_host(out.data(), t);
  } else {
    std::vector<double> d(t.numel());
    model.backend().copy_to_host(d.data(), t);
    std::copy(d.begin(), d.end(), out.begin());
  }
  return out;
}

std::vector<int64_t> shape_of(const Tensor& t) {
  return std::vector<int64_t>(t.shape.begin(), t.shape.begin() + t.ndim);
}

}  // namespace

// Files hold the fp32 master weights: a bf16 working copy would lose what AdamW keeps.
void add_llama_weights(SafetensorsWriter& writer, const Llama& model) {
  for (const NamedParameter& p : model.parameters()) {
    const std::vector<float> host = host_f32(model, p.master);
    writer.add(p.name, DType::f32, shape_of(p.master), host.data());
  }
}

void save_llama_weights(const Llama& model, const std::string& path) {
  SafetensorsWriter writer;
  writer.set_metadata("format", "meap");
  add_llama_weights(writer, model);
  writer.write(path);
}

void load_llama_weights(Llama& model, const std::string& path) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  for (const auto& info : file.tensors()) {
    bool known = false;
    for (const NamedParameter& p : model.parameters()) known |= p.name == info.name;
    if (!known)
      fail(path, " holds tensor '", info.name,
           "' that this model does not have: the file belongs to another model shape "
           "(check model.n_layers and model.tie_embeddings)");
  }
  for (const NamedParameter& p : model.parameters()) {
    if (!file.has(p.name))
      fail(path, " has no tensor '", p.name, "': the file belongs to another model shape");
    std::vector<float> host(p.master.numel());
    file.read(p.name, DType::f32, shape_of(p.master), host.data());
    if (p.master.dtype == DType::f32) {
      model.backend().copy_from_host(p.master, host.data());
    } else {
      std::vector<double> d(host.begin(), host.end());
      model.backend().copy_from_host(p.master, d.data());
    }
  }
  model.sync_working_copy();  // the bf16 working copy the forward reads
}

}  // namespace meap
