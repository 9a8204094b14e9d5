// An upward include, for the test of scripts/check_layers.py.
#pragma once
#include "meap/train/config.hpp"
