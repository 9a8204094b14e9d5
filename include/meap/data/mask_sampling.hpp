// MaskSampling (data.meap.sampling): how MEAP draws the masked input positions.
//   per_sequence  meap's default: round(P*T) positions drawn afresh for every sequence,
//                 keyed by (run.seed, epoch, global sequence index) -- docs/data.md.
//   authors_code  the MEAP authors' released code: random.seed(50 + step % 51), then
//                 random.sample(range(0, T-1), max(1, int(P*T))) -- one pattern per optimizer
//                 step for the whole global batch, 51 patterns in all, the last input never
//                 masked (PythonRandom reproduces Python's draws bit for bit).
#pragma once

#include <array>
#include <span>
#include <string_view>

namespace meap {

enum class MaskSampling { per_sequence, authors_code };

inline std::span<const std::string_view> enum_names(MaskSampling) {
  static constexpr std::array<std::string_view, 2> names = {"per_sequence", "authors_code"};
  return names;
}

}  // namespace meap
