// ConfigSchema: the generic machinery behind meap's YAML configs. A schema is a table of
// dotted keys, each bound to a typed member of a config struct; it reads YAML text plus
// dotted command-line overrides ("optim.lr=1e-3") into that struct, refuses unknown keys
// with a did-you-mean, and writes the struct back as YAML. It knows no key itself: each
// layer lists its own section's keys (ConfigKeys<Section>) and the run config composes them.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "meap/core/enum_names.hpp"

namespace meap {

// Two numbers behind one key, written as a list: optim.betas: [0.9, 0.95].
struct ConfigPair {
  double* first;
  double* second;
};

// An enum spelled by name (enum_names.hpp).
struct ConfigChoice {
  void* value;
  int (*get)(const void* value);
  void (*set)(void* value, int index);
  std::span<const std::string_view> names;
};

using ConfigSlot =
    std::variant<int64_t*, uint64_t*, double*, bool*, std::string*, ConfigPair, ConfigChoice>;

inline ConfigSlot config_slot(int64_t* p) { return p; }
inline ConfigSlot config_slot(uint64_t* p) { return p; }
inline ConfigSlot config_slot(double* p) { return p; }
inline ConfigSlot config_slot(bool* p) { return p; }
inline ConfigSlot config_slot(std::string* p) { return p; }
template <NamedEnum E>
ConfigSlot config_slot(E* p) {
  return ConfigChoice{p, [](const void* v) { return static_cast<int>(*static_cast<const E*>(v)); },
                      [](void* v, int i) { *static_cast<E*>(v) = static_cast<E>(i); },
                      enum_names(E{})};
}

// The keys of one config section, relative to it ("lr", "meap.mask_ratio").
template <class Section>
struct ConfigKeys {
  struct Key {
    std::string_view name;
    ConfigSlot (*slot)(Section&);
  };
  std::vector<Key> keys;
};

// A key whose name is the member path itself, so the table cannot drift from the struct:
// MEAP_CONFIG_KEY(DataConfig, meap.mask_ratio) -> {"meap.mask_ratio", &s.meap.mask_ratio}.
#define MEAP_CONFIG_KEY(Section, path) \
  { #path, [](Section& s) -> ::meap::ConfigSlot { return ::meap::config_slot(&s.path); } }

class ConfigSchema {
 public:
  // Adds every key of `keys` under "section." for the member `member` of Root.
  template <class Root, class Section>
  void add_section(std::string_view section, Section Root::*member,
                   const ConfigKeys<Section>& keys) {
    for (const auto& k : keys.keys)
      keys_.push_back({std::string(section) + "." + std::string(k.name),
                       [member, slot = k.slot](void* root) {
                         return slot(static_cast<Root*>(root)->*member);
                       }});
  }

  // Reads one YAML document, then the overrides ("key=value", the value parsed as YAML),
  // into `root` (keys not given keep root's values). Throws meap::Error naming the source,
  // the line and the dotted key; unknown keys get a did-you-mean. Numbers and booleans
  // must be plain scalars (a quoted '12' is a string), and no YAML tags are accepted.
  template <class Root>
  void read(Root& root, const std::string& yaml_text, const std::vector<std::string>& overrides,
            const std::string& source) const {
    read_erased(&root, yaml_text, overrides, source);
  }
  // Every key of `root`, in table order, as YAML that read() gives back equal.
  template <class Root>
  std::string to_yaml(const Root& root) const {
    return to_yaml_erased(const_cast<Root*>(&root));
  }
  // True when every key has the same value in a and b.
  template <class Root>
  bool equal(const Root& a, const Root& b) const {
    return equal_erased(const_cast<Root*>(&a), const_cast<Root*>(&b));
  }
  // The keys of `a` whose values differ in `b`, as "key: A -> B" lines.
  template <class Root>
  std::vector<std::string> differences(const Root& a, const Root& b) const {
    return differences_erased(const_cast<Root*>(&a), const_cast<Root*>(&b));
  }

 private:
  struct Key {
    std::string name;
    std::function<ConfigSlot(void* root)> slot;
  };
  std::vector<Key> keys_;

  void read_erased(void* root, const std::string& yaml_text,
                   const std::vector<std::string>& overrides, const std::string& source) const;
  std::string to_yaml_erased(void* root) const;
  bool equal_erased(void* a, void* b) const;
  std::vector<std::string> differences_erased(void* a, void* b) const;

  friend class ConfigSchemaReader;
};

// "key must be RULE, got VALUE" unless ok: the range checks of every section's validate().
template <class V>
void require_config(bool ok, std::string_view key, std::string_view rule, const V& value) {
  if (!ok) fail(key, " must be ", rule, ", got ", value);
}

}  // namespace meap
