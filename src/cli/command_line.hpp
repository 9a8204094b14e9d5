// One style for every `meap` command's arguments and help: a CLI11 app with meap's help
// layout and error report (exit 2, naming the option), and the options several commands
// share, each defined once here.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <CLI/CLI.hpp>

#include "meap/backend/device_choice.hpp"

#include "cli/commands.hpp"

namespace meap::cli {

// CONFIG.yaml [section.key=value ...]: a run config and the overrides applied to it.
struct ConfigArgs {
  std::string path;
  std::vector<std::string> overrides;
};

// Value checks CLI11 runs on the text before converting it; the error names the option.
CLI::Validator at_least(long long min);  // an integer >= min
CLI::Validator non_negative_integer();   // unsigned: CLI11 alone would wrap "-1" around
CLI::Validator finite_number();          // refuses nan and inf
CLI::Validator byte_size();              // "500MB", "2GiB": becomes the number of bytes

class CommandLine {
 public:
  // program: "meap train"; summary: what the command does (first line of --help);
  // details: text printed after the options.
  CommandLine(const std::string& program, const std::string& summary,
              const std::string& details = "");

  CLI::App& app() { return app_; }

  // A required positional argument (a path, or several: std::vector).
  template <class T>
  CLI::Option* add_positional(const std::string& name, T& value, const std::string& help) {
    return app_.add_option(name, value, help)->required()->type_name("");
  }

  // The options several commands share.
  void add_config(ConfigArgs& config);     // positional CONFIG.yaml, then KEY=VALUE overrides
  void add_checkpoint(std::string& path);  // positional CHECKPOINT_DIR (or a run directory)
  CLI::Option* add_out(std::string& path, const std::string& help);  // --out, required
  CLI::Option* add_force(bool& force, const std::string& help);
  CLI::Option* add_tokenizer(std::string& path, const std::string& help);
  CLI::Option* add_device(DeviceChoice& device);  // --device auto|cpu|cuda

  // An option with a value (value_name in the help), checked by its type: an unsigned one
  // refuses a sign (CLI11 alone would wrap "-1" around), a floating point one nan and inf.
  template <class T>
  CLI::Option* add_option(const std::string& name, T& value, const std::string& value_name,
                          const std::string& help) {
    CLI::Option* option = app_.add_option(name, value, help)->type_name(value_name);
    if constexpr (std::is_unsigned_v<T>) option->check(non_negative_integer());
    if constexpr (std::is_floating_point_v<T>) option->check(finite_number());
    return option;
  }

  // Parses the arguments after the command's name. nullopt: run the command. Otherwise the
  // command returns this exit code: 0 after --help (printed to stdout), 2 after a bad
  // argument (the error naming it and the usage line on stderr).
  std::optional<int> parse(const Args& args);

 private:
  std::string program_;
  CLI::App app_;
  std::shared_ptr<CLI::Formatter> formatter_ = std::make_shared<CLI::Formatter>();
};

}  // namespace meap::cli
