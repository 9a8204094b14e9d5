// CommandLine: meap's CLI11 layout, error report and shared options.
#include "cli/command_line.hpp"

#include <cctype>
#include <cmath>
#include <functional>
#include <iostream>

#include "meap/core/error.hpp"
#include "meap/core/human_format.hpp"

namespace meap::cli {

namespace {

// A check of an option's text; its error reads "--name: EXPECTS, got 'TEXT'".
CLI::Validator text_check(std::function<bool(const std::string&)> ok, std::string expects) {
  return CLI::Validator(
      [ok = std::move(ok), expects = std::move(expects)](std::string& text) {
        return ok(text) ? std::string() : str_cat(expects, ", got '", text, "'");
      },
      "");
}

}  // namespace

CLI::Validator at_least(long long min) {
  return text_check(
      [min](const std::string& text) {
        try {
          size_t used = 0;
          return std::stoll(text, &used) >= min && used == text.size();
        } catch (const std::exception&) {
          return false;
        }
      },
      str_cat("expects an integer >= ", min));
}

CLI::Validator non_negative_integer() {
  // The digits themselves are CLI11's to convert (and to name the option when they are not).
  return text_check(
      [](const std::string& text) {
        return text.empty() || std::isdigit(static_cast<unsigned char>(text[0]));
      },
      "expects a non-negative integer");
}

CLI::Validator finite_number() {
  return text_check(
      [](const std::string& text) {
        try {
          return std::isfinite(std::stod(text));
        } catch (const std::exception&) {
          return true;  // not a number at all: CLI11's conversion names it
        }
      },
      "expects a finite number");
}

CLI::Validator byte_size() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          text = std::to_string(parse_byte_size(text, ""));
          return "";
        } catch (const Error& e) {
          const std::string message = e.what();
          return message.substr(message.find_first_not_of(' '));
        }
      },
      "");
}

CommandLine::CommandLine(const std::string& program, const std::string& summary,
                         const std::string& details)
    : program_(program), app_(summary + "\n", program) {
  formatter_->label("Usage", "usage");
  formatter_->label("REQUIRED", "(required)");
  formatter_->label("SUBCOMMAND", "COMMAND");
  formatter_->column_width(30);
  app_.formatter(formatter_);
  if (!details.empty()) app_.footer(details);
}

void CommandLine::add_config(ConfigArgs& config) {
  add_positional("CONFIG.yaml", config.path, "the run's config (docs/configs.md)");
  app_.add_option("overrides", config.overrides,
                  "config overrides, e.g. optim.lr=1e-3 train.max_steps=50")
      ->type_name("SECTION.KEY=VALUE");
}

void CommandLine::add_checkpoint(std::string& path) {
  add_positional("CHECKPOINT_DIR", path,
                 "a checkpoint (RUN_DIR/checkpoints/step-*, holding manifest.json) or a run\n"
                 "directory, whose latest complete checkpoint is then used");
}

CLI::Option* CommandLine::add_out(std::string& path, const std::string& help) {
  return add_option("--out", path, "DIR", help)->required();
}

CLI::Option* CommandLine::add_force(bool& force, const std::string& help) {
  return app_.add_flag("--force", force, help);
}

CLI::Option* CommandLine::add_tokenizer(std::string& path, const std::string& help) {
  return add_option("--tokenizer", path, "MODEL", help);
}

CLI::Option* CommandLine::add_device(DeviceChoice& device) {
  std::vector<std::string> names;
  for (std::string_view n : enum_names(DeviceChoice{})) names.emplace_back(n);
  return app_
      .add_option_function<std::string>(
          "--device",
          [&device](const std::string& name) { device = parse_enum<DeviceChoice>(name, "--device"); },
          "the backend: auto (default: cuda when a GPU is visible), cpu or cuda")
      ->check(CLI::IsMember(names))
      ->type_name("D");
}

std::optional<int> CommandLine::parse(const Args& args) {
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
  try {
    app_.parse(reversed);
    return std::nullopt;
  } catch (const CLI::CallForHelp&) {
    std::cout << app_.help();
    return 0;
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    // CLI11 checks required options before unknown ones; a misspelt "--ouput" is the news.
    const std::vector<std::string> extra = app_.remaining();
    if (!extra.empty() && (dynamic_cast<const CLI::ExtrasError*>(&e) ||
                           dynamic_cast<const CLI::RequiredError*>(&e))) {
      what = extra[0].rfind("-", 0) == 0 ? str_cat("unknown option '", extra[0], "'")
                                         : str_cat("unexpected argument '", extra[0], "'");
    }
    std::cerr << program_ << ": error: " << what << "\n"
              << formatter_->make_usage(&app_, program_) << "Run `" << program_
              << " --help` for the options.\n";
    return 2;
  }
}

}  // namespace meap::cli
