// DeviceChoice: the device a run asks for (train.device, --device): auto picks CUDA when
// this binary has it and a GPU is visible, else the CPU.
#pragma once

#include <span>
#include <string_view>

#include "meap/core/enum_names.hpp"

namespace meap {

enum class DeviceChoice { auto_, cpu, cuda };

inline std::span<const std::string_view> enum_names(DeviceChoice) {
  static constexpr std::string_view kNames[] = {"auto", "cpu", "cuda"};
  return kNames;
}

}  // namespace meap
