// GPT-2's byte-level alphabet, which tokenizer.json's ByteLevel pre-tokenizer and decoder
// use: each of the 256 bytes is written as one printable character (printable Latin-1 bytes
// as themselves, the others as U+0100...), so a vocabulary of byte strings is valid UTF-8.
// meap encodes on raw bytes and converts the vocabulary once, at load time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace meap::hf {

char32_t byte_level_char(uint8_t byte);

// The raw bytes a vocabulary entry written in the alphabet stands for; false when it holds a
// character outside the alphabet (such an entry is never produced from text).
bool byte_level_to_bytes(std::string_view token, std::string& bytes);

// The ByteLevel decoder on one token: characters of the alphabet become their byte, any other
// character stays as it is (added tokens such as "<|im_start|>" or "中文" pass through).
void append_byte_level_decoded(std::string_view token, std::string& out);

// Raw bytes written in the alphabet (the inverse of byte_level_to_bytes).
std::string bytes_to_byte_level(std::string_view bytes);

}  // namespace meap::hf
