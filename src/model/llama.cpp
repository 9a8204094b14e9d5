// Llama forward and backward, written out op by op over the Backend interface.
#include "meap/model/llama.hpp"

#include <algorithm>
#include <cmath>

#include "meap/core/rng.hpp"

namespace meap {

namespace {

constexpr int64_t kParamAlign = 64;  // elements; keeps every view 256-byte aligned in f32

// A (B, T)-prefix view of a 1-D activation buffer.
Tensor shaped(const Tensor& buf, std::initializer_list<int64_t> dims) {
  Tensor t(buf.data, buf.dtype, buf.device, dims);
  MEAP_CHECK(t.numel() <= buf.numel(), "activation view larger than its buffer");
  return t;
}

Tensor view_at(const Tensor& flat, int64_t offset, const std::vector<int64_t>& shape) {
  Tensor t = flat;
  t.ndim = static_cast<int>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) t.shape[i] = shape[i];
  t.data = static_cast<char*>(flat.data) + offset * dtype_size(flat.dtype);
  return t;
}

}  // namespace

std::vector<Llama::ParameterSpec> Llama::parameter_specs(const ModelConfig& c, int64_t* n_flat) {
  std::vector<ParameterSpec> specs;
  int64_t offset = 0;
  auto add = [&](std::string name, std::vector<int64_t> shape, bool decay) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    specs.push_back({std::move(name), std::move(shape), decay, offset});
    offset += (n + kParamAlign - 1) / kParamAlign * kParamAlign;
  };
  add("tok_embeddings.weight", {c.vocab_size, c.dim}, true);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    add(p + "attention_norm.weight", {c.dim}, false);
    add(p + "attention.wqkv.weight", {c.qkv_dim(), c.dim}, true);
    add(p + "attention.wo.weight", {c.dim, c.n_heads * c.head_dim()}, true);
    add(p + "ffn_norm.weight", {c.dim}, false);
    add(p + "feed_forward.w_gate_up.weight", {2 * c.ffn_dim, c.dim}, true);
    add(p + "feed_forward.w_down.weight", {c.dim, c.ffn_dim}, true);
  }
  add("norm.weight", {c.dim}, false);
  if (!c.tie_embeddings) add("output.weight", {c.vocab_size, c.dim}, true);
  *n_flat = offset;
  return specs;
}

template <class Alloc>
void Llama::layout_activations(Activations& a, Alloc& alloc, const ModelConfig& c,
                               int64_t batch, int64_t seq_len, DType dt, Recompute rc) {
  const int64_t N = batch * seq_len, C = c.dim, D = c.head_dim();
  // Per-row statistics and the rotary tables stay f32 under bf16 (backend.hpp).
  const DType st = dt == DType::bf16 ? DType::f32 : dt;
  const bool share_mlp = rc == Recompute::mlp || rc == Recompute::all;
  const bool share_att = rc == Recompute::attention || rc == Recompute::all;
  a.tokens = alloc.take(DType::i32, {N});
  a.targets = alloc.take(DType::i32, {N});
  a.weights = alloc.take(DType::f32, {N});
  a.segments = alloc.take(DType::i32, {N});
  a.positions = alloc.take(DType::i32, {N});
  a.rope_cos = alloc.take(st, {seq_len, D / 2});
  a.rope_sin = alloc.take(st, {seq_len, D / 2});
  a.residual.resize(c.n_layers + 1);
  for (auto& r : a.residual) r = alloc.take(dt, {N * C});
  a.layers.resize(c.n_layers);
  for (size_t l = 0; l < a.layers.size(); ++l) {
    LayerActivations& x = a.layers[l];
    x.ln1 = alloc.take(dt, {N * C});
    x.rstd1 = alloc.take(st, {N});
    x.qkv = alloc.take(dt, {N * c.qkv_dim()});
    if (!share_att || l == 0) {
      x.att = alloc.take(dt, {N * c.n_heads * D});  // (B, T, Hq, D)
      x.lse = alloc.take(st, {N * c.n_heads});      // (B, Hq, T)
    } else {
      x.att = a.layers[0].att;
      x.lse = a.layers[0].lse;
    }
    x.x_mid = alloc.take(dt, {N * C});
    if (!share_mlp || l == 0) {
      x.ln2 = alloc.take(dt, {N * C});
      x.rstd2 = alloc.take(st, {N});
      x.gate_up = alloc.take(dt, {N * 2 * c.ffn_dim});
      x.act = alloc.take(dt, {N * c.ffn_dim});
    } else {
      x.ln2 = a.layers[0].ln2;
      x.rstd2 = a.layers[0].rstd2;
      x.gate_up = a.layers[0].gate_up;
      x.act = a.layers[0].act;
    }
  }
  a.lnf = alloc.take(dt, {N * C});
  a.rstdf = alloc.take(st, {N});
  a.logits = alloc.take(dt, {N * c.vocab_size});
  a.losses = alloc.take(st, {N});
  a.d_resid = alloc.take(dt, {N * C});
  a.d_norm = alloc.take(dt, {N * C});
  a.d_att = alloc.take(dt, {N * c.n_heads * D});
  a.d_qkv = alloc.take(dt, {N * c.qkv_dim()});
  a.d_act = alloc.take(dt, {N * c.ffn_dim});
  a.d_gate_up = alloc.take(dt, {N * 2 * c.ffn_dim});
}

std::span<const std::string_view> enum_names(Recompute) {
  static constexpr std::string_view kNames[] = {"none", "mlp", "attention", "all"};
  return kNames;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> Llama::parameter_shapes(
    const ModelConfig& config) {
  int64_t n_flat = 0;
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const ParameterSpec& s : parameter_specs(config, &n_flat)) out.push_back({s.name, s.shape});
  return out;
}

LlamaMemoryPlan Llama::memory_plan(const ModelConfig& config, int64_t batch, int64_t seq_len,
                                   DType dtype, Recompute recompute) {
  config.validate();
  MEAP_CHECK(dtype == DType::f32 || dtype == DType::f64 || dtype == DType::bf16,
             "Llama dtype ", dtype_name(dtype));
  LlamaMemoryPlan plan;
  for (const auto& s : parameter_specs(config, &plan.n_flat)) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    plan.n_parameters += n;
  }
  const bool mixed = dtype == DType::bf16;
  plan.parameter_bytes = plan.n_flat * dtype_size(dtype);
  plan.master_bytes = mixed ? plan.n_flat * dtype_size(DType::f32) : 0;
  plan.gradient_bytes = plan.n_flat * dtype_size(mixed ? DType::f32 : dtype);
  ArenaPlanner planner(Device::cpu);
  Activations a;
  layout_activations(a, planner, config, batch, seq_len, dtype, recompute);
  plan.activation_bytes = planner.bytes();
  return plan;
}

Llama::Llama(const ModelConfig& config, Backend& backend, int64_t batch, int64_t seq_len,
             DType dtype, int64_t flat_multiple, Recompute recompute)
    : config_(config),
      backend_(backend),
      dtype_(dtype),
      grad_dtype_(dtype == DType::bf16 ? DType::f32 : dtype),
      recompute_(recompute),
      max_batch_(batch),
      max_seq_(seq_len) {
  config_.validate();
  if (dtype != DType::f32 && dtype != DType::f64 && dtype != DType::bf16)
    fail("Llama parameters must be f32, f64 or bf16, got ", dtype_name(dtype));
  if (dtype == DType::bf16 && !backend_.supports(dtype))
    fail("bf16 needs the CUDA backend: the ", backend_.name(), " backend does not compute in "
         "bf16; set train.precision=fp32 (or auto) to run on the CPU, or train.device=cuda");
  if (!backend_.supports(dtype))
    fail("the ", backend_.name(), " backend does not compute in ", dtype_name(dtype));
  if (batch <= 0) fail("micro-batch size must be positive, got ", batch);
  if (seq_len <= 0 || seq_len > config_.max_seq_len)
    fail("sequence length ", seq_len, " must be in [1, model.max_seq_len = ",
         config_.max_seq_len, "]");

  if (flat_multiple <= 0) fail("flat buffer multiple must be positive, got ", flat_multiple);

  const LlamaMemoryPlan plan = memory_plan(config_, batch, seq_len, dtype, recompute);
  n_parameters_ = plan.n_parameters;
  const int64_t n_padded = (plan.n_flat + flat_multiple - 1) / flat_multiple * flat_multiple;
  param_arena_ = Arena(backend_, n_padded * dtype_size(dtype));
  grad_arena_ = Arena(backend_, n_padded * dtype_size(grad_dtype_));
  params_ = param_arena_.whole(dtype).rows(0, n_padded);
  grads_ = grad_arena_.whole(grad_dtype_).rows(0, n_padded);
  if (dtype == DType::bf16) {
    master_arena_ = Arena(backend_, n_padded * dtype_size(DType::f32));
    master_ = master_arena_.whole(DType::f32).rows(0, n_padded);
  } else {
    master_ = params_;  // f32 / f64: the parameters are their own master, no extra memory
  }
  // Padding and alignment gaps belong to no parameter; loading weights never writes them,
  // and collectives over the flat buffers (all-gather, norms) must see zeros there.
  backend_.fill_zero(params_);
  backend_.fill_zero(master_);
  backend_.fill_zero(grads_);

  int64_t n_flat = 0;
  for (const auto& s : parameter_specs(config_, &n_flat)) {
    named_.push_back({s.name, view_at(params_, s.offset, s.shape),
                      view_at(grads_, s.offset, s.shape), view_at(master_, s.offset, s.shape),
                      s.offset, s.weight_decay});
  }
  size_t k = 0;
  auto next = [&](Tensor& value, Tensor& grad) {
    value = named_[k].value;
    grad = named_[k].grad;
    ++k;
  };
  next(embedding_, d_embedding_);
  w_.resize(config_.n_layers);
  dw_.resize(config_.n_layers);
  for (int64_t l = 0; l < config_.n_layers; ++l) {
    next(w_[l].attn_norm, dw_[l].attn_norm);
    next(w_[l].wqkv, dw_[l].wqkv);
    next(w_[l].wo, dw_[l].wo);
    next(w_[l].mlp_norm, dw_[l].mlp_norm);
    next(w_[l].w_gate_up, dw_[l].w_gate_up);
    next(w_[l].w_down, dw_[l].w_down);
  }
  next(final_norm_, d_final_norm_);
  for (int64_t l = 0; l < config_.n_layers; ++l)
    layer_begin_.push_back(parameter("layers." + std::to_string(l) + ".attention_norm.weight").offset);
  layer_begin_.push_back(parameter("norm.weight").offset);
  if (config_.tie_embeddings) {
    lm_head_ = embedding_;
    d_lm_head_ = d_embedding_;
  } else {
    next(lm_head_, d_lm_head_);
  }

  act_arena_ = Arena(backend_, plan.activation_bytes);
  layout_activations(act_, act_arena_, config_, batch, seq_len, dtype, recompute);
  host_losses_.resize(batch * seq_len);
  if (act_.losses.dtype == DType::f32) host_losses_f32_.resize(batch * seq_len);

  // Rotary tables, computed in double: angle(t, j) = t * theta^(-2j/D); stored in the
  // statistics dtype (f64 for an f64 model, else f32).
  const int64_t half = config_.head_dim() / 2;
  std::vector<double> cos_d(seq_len * half), sin_d(seq_len * half);
  for (int64_t t = 0; t < seq_len; ++t)
    for (int64_t j = 0; j < half; ++j) {
      const double inv_freq = std::pow(config_.rope_theta, -2.0 * j / config_.head_dim());
      cos_d[t * half + j] = std::cos(t * inv_freq);
      sin_d[t * half + j] = std::sin(t * inv_freq);
    }
  if (act_.rope_cos.dtype == DType::f64) {
    backend_.copy_from_host(act_.rope_cos, cos_d.data());
    backend_.copy_from_host(act_.rope_sin, sin_d.data());
  } else {
    std::vector<float> cos_f(cos_d.begin(), cos_d.end()), sin_f(sin_d.begin(), sin_d.end());
    backend_.copy_from_host(act_.rope_cos, cos_f.data());
    backend_.copy_from_host(act_.rope_sin, sin_f.data());
  }

  zero_grad();
}

Llama::~Llama() = default;

const NamedParameter& Llama::parameter(const std::string& name) const {
  for (const auto& p : named_)
    if (p.name == name) return p;
  fail("model has no parameter named '", name, "'");
}

void Llama::init_weights(uint64_t seed) {
  const double residual_scale = 1.0 / std::sqrt(2.0 * config_.n_layers);
  std::vector<double> host(master_.numel(), 0.0);
  for (size_t k = 0; k < named_.size(); ++k) {
    const NamedParameter& p = named_[k];
    const int64_t n = p.value.numel();
    double* dst = host.data() + p.offset;
    if (!p.weight_decay) {  // norm gains
      std::fill(dst, dst + n, 1.0);
      continue;
    }
    const bool residual_proj = p.name.ends_with("attention.wo.weight") ||
                               p.name.ends_with("feed_forward.w_down.weight");
    const double std = config_.init_std * (residual_proj ? residual_scale : 1.0);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] = std * philox_normal(seed, k, i);
  }
  if (master_.dtype == DType::f64) {
    backend_.copy_from_host(master_, host.data());
  } else {
    std::vector<float> f(host.begin(), host.end());
    backend_.copy_from_host(master_, f.data());
  }
  sync_working_copy();
}

void Llama::sync_working_copy() {
  if (master_.data != params_.data) backend_.cast(params_, master_);
}

void Llama::zero_grad() { backend_.fill_zero(grads_); }

void Llama::upload_tokens(const int32_t* inputs, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (inputs[i] < 0 || inputs[i] >= config_.vocab_size)
      fail("input token id ", inputs[i], " at position ", i,
           " is outside the model's vocabulary [0, ", config_.vocab_size, ")");
  backend_.copy_from_host(shaped(act_.tokens, {n}), inputs);
}

void Llama::upload_documents(const PackedDocuments& documents, int64_t B, int64_t T) {
  if (B <= 0 || B > max_batch_ || T <= 0 || T > max_seq_)
    fail("batch (", B, ", ", T, ") exceeds the model's allocation (", max_batch_, ", ",
         max_seq_, ")");
  const int64_t N = B * T;
  has_segments_ = documents.segment_ids != nullptr;
  has_positions_ = documents.positions != nullptr;
  if (const int32_t* seg = documents.segment_ids) {
    // Documents are contiguous: the kernels skip whole tiles on this promise.
    for (int64_t i = 0; i < N; ++i)
      if (i % T != 0 && seg[i] < seg[i - 1])
        fail("segment id ", seg[i], " at row ", i / T, " position ", i % T,
             " is smaller than the one before it (", seg[i - 1],
             "): a packed row's documents must be contiguous");
    backend_.copy_from_host(shaped(act_.segments, {N}), seg);
  }
  if (const int32_t* pos = documents.positions) {
    for (int64_t i = 0; i < N; ++i)
      if (pos[i] < 0 || pos[i] >= max_seq_)
        fail("RoPE position ", pos[i], " at row ", i / T, " position ", i % T,
             " is outside [0, ", max_seq_, ")");
    backend_.copy_from_host(shaped(act_.positions, {N}), pos);
  }
}

Tensor Llama::segments() const {
  return has_segments_ ? shaped(act_.segments, {last_B_, last_T_}) : Tensor{};
}

Tensor Llama::positions() const {
  return has_positions_ ? shaped(act_.positions, {last_B_, last_T_}) : Tensor{};
}

std::pair<Tensor, Tensor> Llama::rope_tables() const {
  const int64_t rows = has_positions_ ? max_seq_ : last_T_, half = config_.head_dim() / 2;
  return {shaped(act_.rope_cos, {rows, half}), shaped(act_.rope_sin, {rows, half})};
}

void Llama::run_forward(int64_t B, int64_t T) {
  if (B <= 0 || B > max_batch_ || T <= 0 || T > max_seq_)
    fail("batch (", B, ", ", T, ") exceeds the model's allocation (", max_batch_, ", ",
         max_seq_, ")");
  last_B_ = B;
  last_T_ = T;
  Backend& be = backend_;
  const ModelConfig& c = config_;
  const int64_t N = B * T, C = c.dim, Hq = c.n_heads, Hkv = c.n_kv_heads, D = c.head_dim();
  const int rot_heads = static_cast<int>(Hq + Hkv);
  const auto [cos, sin] = rope_tables();
  const Tensor segs = segments(), pos = positions();

  be.embedding_forward(shaped(act_.residual[0], {N, C}), shaped(act_.tokens, {N}), embedding_);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& w = w_[l];
    const LayerActivations& a = act_.layers[l];
    const Tensor x = shaped(act_.residual[l], {N, C});
    const Tensor ln1 = shaped(a.ln1, {N, C}), rstd1 = shaped(a.rstd1, {N});
    const Tensor qkv = shaped(a.qkv, {B, T, Hq + 2 * Hkv, D});
    const Tensor att = shaped(a.att, {B, T, Hq, D}), lse = shaped(a.lse, {B, Hq, T});
    const Tensor x_mid = shaped(a.x_mid, {N, C});
    be.rmsnorm_forward(ln1, rstd1, x, w.attn_norm, c.norm_eps);
    be.matmul_forward(qkv, ln1, w.wqkv);
    be.rope_forward(qkv, rot_heads, cos, sin, pos);  // qkv keeps the rotated q, k for backward
    be.attention_forward(att, lse, qkv, static_cast<int>(Hq), static_cast<int>(Hkv), segs);
    be.matmul_forward(x_mid, att, w.wo);
    be.add_forward(x_mid, x_mid, x);

    const Tensor x_next = shaped(act_.residual[l + 1], {N, C});
    mlp_front(l, B, T);
    be.matmul_forward(x_next, shaped(a.act, {N, c.ffn_dim}), w.w_down);
    be.add_forward(x_next, x_next, x_mid);
  }
  const Tensor lnf = shaped(act_.lnf, {N, C});
  be.rmsnorm_forward(lnf, shaped(act_.rstdf, {N}), shaped(act_.residual[c.n_layers], {N, C}),
                     final_norm_, c.norm_eps);
  be.matmul_forward(shaped(act_.logits, {N, c.vocab_size}), lnf, lm_head_);
}

void Llama::mlp_front(int64_t l, int64_t B, int64_t T) {
  const ModelConfig& c = config_;
  const LayerActivations& a = act_.layers[l];
  const int64_t N = B * T, C = c.dim;
  const Tensor ln2 = shaped(a.ln2, {N, C});
  const Tensor gate_up = shaped(a.gate_up, {N, 2 * c.ffn_dim});
  backend_.rmsnorm_forward(ln2, shaped(a.rstd2, {N}), shaped(a.x_mid, {N, C}), w_[l].mlp_norm,
                           c.norm_eps);
  backend_.matmul_forward(gate_up, ln2, w_[l].w_gate_up);
  backend_.swiglu_forward(shaped(a.act, {N, c.ffn_dim}), gate_up);
}

void Llama::forward_logits(const int32_t* inputs, int64_t B, int64_t T,
                           PackedDocuments documents) {
  upload_documents(documents, B, T);
  upload_tokens(inputs, B * T);
  run_forward(B, T);
  has_loss_grad_ = false;
}

Tensor Llama::logits() const {
  MEAP_CHECK(last_B_ > 0 && !has_loss_grad_,
             "logits() needs forward_logits(); forward() replaces them by their gradient");
  return shaped(act_.logits, {last_B_, last_T_, config_.vocab_size});
}

Tensor Llama::layer_qkv(int64_t layer) const {
  MEAP_CHECK(last_B_ > 0 && layer >= 0 && layer < config_.n_layers,
             "layer_qkv() needs a forward and a layer index in [0, n_layers)");
  return shaped(act_.layers[layer].qkv,
                {last_B_, last_T_, config_.n_heads + 2 * config_.n_kv_heads, config_.head_dim()});
}

double Llama::forward(const int32_t* inputs, const int32_t* targets, const float* weights,
                      int64_t B, int64_t T, double grad_scale, PackedDocuments documents) {
  upload_documents(documents, B, T);
  const int64_t N = B * T;
  double weight_sum = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (!(weights[i] >= 0.0f) || !std::isfinite(weights[i]))
      fail("loss weight ", weights[i], " at position ", i, " must be finite and >= 0");
    if (weights[i] > 0 && (targets[i] < 0 || targets[i] >= config_.vocab_size))
      fail("target token id ", targets[i], " at position ", i,
           " is outside the model's vocabulary [0, ", config_.vocab_size, ")");
    weight_sum += weights[i];
  }
  upload_tokens(inputs, N);
  backend_.copy_from_host(shaped(act_.targets, {N}), targets);
  backend_.copy_from_host(shaped(act_.weights, {N}), weights);
  run_forward(B, T);

  if (grad_scale == 0) grad_scale = weight_sum > 0 ? 1.0 / weight_sum : 0.0;
  const Tensor logits = shaped(act_.logits, {N, config_.vocab_size});
  const Tensor losses = shaped(act_.losses, {N});
  backend_.cross_entropy_forward_backward(losses, logits, logits, shaped(act_.targets, {N}),
                                          shaped(act_.weights, {N}), grad_scale);
  has_loss_grad_ = true;

  double weighted = 0;
  if (losses.dtype == DType::f64) {
    backend_.copy_to_host(host_losses_.data(), losses);
  } else {
    backend_.copy_to_host(host_losses_f32_.data(), losses);
    std::copy_n(host_losses_f32_.begin(), N, host_losses_.begin());
  }
  for (int64_t i = 0; i < N; ++i) weighted += weights[i] * host_losses_[i];
  return weight_sum > 0 ? weighted / weight_sum : 0.0;
}

void Llama::backward(const GradientsReady& ready) {
  if (!has_loss_grad_) fail("backward() needs a preceding forward() with targets");
  const auto report = [&](int64_t begin, int64_t end) {
    if (ready) ready(begin, end);
  };
  Backend& be = backend_;
  const ModelConfig& c = config_;
  const int64_t B = last_B_, T = last_T_, N = B * T, C = c.dim, Hq = c.n_heads,
                Hkv = c.n_kv_heads, D = c.head_dim();
  const int rot_heads = static_cast<int>(Hq + Hkv);
  const auto [cos, sin] = rope_tables();
  const Tensor segs = segments(), pos = positions();
  const Tensor d_resid = shaped(act_.d_resid, {N, C}), d_norm = shaped(act_.d_norm, {N, C});

  // Head and final norm. d_resid then carries d(loss)/d(residual stream) downwards.
  be.matmul_backward(d_norm, d_lm_head_, shaped(act_.logits, {N, c.vocab_size}),
                     shaped(act_.lnf, {N, C}), lm_head_);
  be.fill_zero(d_resid);
  be.rmsnorm_backward(d_resid, d_final_norm_, d_norm, shaped(act_.residual[c.n_layers], {N, C}),
                      final_norm_, shaped(act_.rstdf, {N}));
  // A tied head's gradient lives in the embedding's range, reported last.
  report(layer_begin_[c.n_layers], grads_.numel());

  const bool redo_mlp = recompute_ == Recompute::mlp || recompute_ == Recompute::all;
  const bool redo_att = recompute_ == Recompute::attention || recompute_ == Recompute::all;
  for (int64_t l = c.n_layers - 1; l >= 0; --l) {
    const LayerWeights& w = w_[l];
    const LayerWeights& dw = dw_[l];
    const LayerActivations& a = act_.layers[l];
    // The shared recompute buffers still hold the last layer's values from the forward.
    const bool last = l == c.n_layers - 1;
    if (redo_mlp && !last) mlp_front(l, B, T);
    if (redo_att && !last)
      be.attention_forward(shaped(a.att, {B, T, Hq, D}), shaped(a.lse, {B, Hq, T}),
                           shaped(a.qkv, {B, T, Hq + 2 * Hkv, D}), static_cast<int>(Hq),
                           static_cast<int>(Hkv), segs);
    // MLP block: x_next = x_mid + w_down(swiglu(w_gate_up(norm(x_mid)))).
    const Tensor d_act = shaped(act_.d_act, {N, c.ffn_dim});
    const Tensor d_gate_up = shaped(act_.d_gate_up, {N, 2 * c.ffn_dim});
    be.matmul_backward(d_act, dw.w_down, d_resid, shaped(a.act, {N, c.ffn_dim}), w.w_down);
    be.swiglu_backward(d_gate_up, d_act, shaped(a.gate_up, {N, 2 * c.ffn_dim}));
    be.matmul_backward(d_norm, dw.w_gate_up, d_gate_up, shaped(a.ln2, {N, C}), w.w_gate_up);
    be.rmsnorm_backward(d_resid, dw.mlp_norm, d_norm, shaped(a.x_mid, {N, C}), w.mlp_norm,
                        shaped(a.rstd2, {N}));
    // Attention block: x_mid = x + wo(attention(rope(wqkv(norm(x))))).
    const Tensor d_att = shaped(act_.d_att, {B, T, Hq, D});
    const Tensor d_qkv = shaped(act_.d_qkv, {B, T, Hq + 2 * Hkv, D});
    const Tensor att = shaped(a.att, {B, T, Hq, D});
    be.matmul_backward(d_att, dw.wo, d_resid, att, w.wo);
    be.attention_backward(d_qkv, d_att, shaped(a.qkv, {B, T, Hq + 2 * Hkv, D}), att,
                          shaped(a.lse, {B, Hq, T}), static_cast<int>(Hq),
                          static_cast<int>(Hkv), segs);
    be.rope_backward(d_qkv, rot_heads, cos, sin, pos);
    be.matmul_backward(d_norm, dw.wqkv, d_qkv, shaped(a.ln1, {N, C}), w.wqkv);
    be.rmsnorm_backward(d_resid, dw.attn_norm, d_norm, shaped(act_.residual[l], {N, C}),
                        w.attn_norm, shaped(a.rstd1, {N}));
    report(layer_begin_[l], layer_begin_[l + 1]);
  }
  be.embedding_backward(d_embedding_, d_resid, shaped(act_.tokens, {N}));
  report(0, layer_begin_[0]);
  has_loss_grad_ = false;
}

}  // namespace meap
