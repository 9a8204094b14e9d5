// A src-private upward include, for the test of scripts/check_layers.py.
#include "cli/commands.hpp"
