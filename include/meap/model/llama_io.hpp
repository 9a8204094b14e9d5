// Saving and loading a Llama's weights as safetensors (meap's own tensor names, fp32).
// Checkpoints and the PyTorch reference test use these; the HF export renames on top.
#pragma once

#include <string>

#include "meap/model/llama.hpp"
#include "meap/core/safetensors.hpp"

namespace meap {

// Adds every parameter's master weights (as F32, whatever the model's dtype: a bf16 model's
// fp32 master, not its bf16 working copy) to the writer.
void add_llama_weights(SafetensorsWriter& writer, const Llama& model);
// Atomically writes the model's weights to path.
void save_llama_weights(const Llama& model, const std::string& path);
// Loads every parameter into the master, then sync_working_copy(); refuses a file whose
// tensors are missing, extra or mis-shaped (a checkpoint of another model) with an error
// naming the tensor.
void load_llama_weights(Llama& model, const std::string& path);

}  // namespace meap
