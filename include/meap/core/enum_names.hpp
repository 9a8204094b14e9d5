// Named enums: an option such as train.precision or --device is an enum parsed once from its
// name. An enum E opts in by declaring, next to it, a function found by argument-dependent
// lookup:  std::span<const std::string_view> enum_names(E);  whose entry i spells value i.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "meap/core/error.hpp"

namespace meap {

template <class E>
concept NamedEnum = std::is_enum_v<E> && requires(E e) {
  { enum_names(e) } -> std::convertible_to<std::span<const std::string_view>>;
};

// "auto, fp32, bf16"
template <NamedEnum E>
std::string enum_choices() {
  std::string out;
  for (std::string_view n : enum_names(E{})) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

template <NamedEnum E>
std::string_view enum_name(E value) {
  const auto names = enum_names(value);
  const auto i = static_cast<size_t>(value);
  MEAP_CHECK(i < names.size(), "enum value ", i, " has no name");
  return names[i];
}

// The value spelled `name`, or false.
template <NamedEnum E>
bool try_parse_enum(std::string_view name, E& out) {
  const auto names = enum_names(E{});
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) {
      out = static_cast<E>(i);
      return true;
    }
  return false;
}

// The value spelled `name`; anything else is refused naming `what` (a config key or an
// option) and the choices.
template <NamedEnum E>
E parse_enum(std::string_view name, std::string_view what) {
  E value{};
  if (!try_parse_enum(name, value))
    fail(what, " must be one of ", enum_choices<E>(), ", got '", name, "'");
  return value;
}

}  // namespace meap
