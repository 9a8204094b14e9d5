#include "meap/train/tensorboard_writer.hpp"

#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>

#include "meap/core/error.hpp"
#include "meap/core/record_file.hpp"

namespace meap {

namespace {

// Reflected Castagnoli polynomial.
constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// TFRecord stores CRCs rotated and offset, so that a CRC of data holding CRCs stays strong.
uint32_t masked_crc(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

// Protocol buffer wire format: just what Event and Summary need.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, uint32_t field, uint32_t wire_type) {
  put_varint(out, (uint64_t{field} << 3) | wire_type);
}
void put_fixed(std::string& out, const void* le_bytes, size_t n) {  // little-endian host
  out.append(static_cast<const char*>(le_bytes), n);
}
void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_tag(out, field, 2);  // length-delimited
  put_varint(out, bytes.size());
  out.append(bytes);
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Event { double wall_time = 1; int64 step = 2; oneof { string file_version = 3;
//         Summary summary = 5; } }
std::string event(int64_t step, uint32_t payload_field, std::string_view payload) {
  std::string e;
  const double wall_time = unix_seconds();
  put_tag(e, 1, 1);  // 64-bit
  put_fixed(e, &wall_time, 8);
  put_tag(e, 2, 0);  // varint (int64: two's complement as uint64)
  put_varint(e, static_cast<uint64_t>(step));
  put_bytes(e, payload_field, payload);
  return e;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = kCrc32cTable[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("cannot create the TensorBoard directory '", dir, "': ", ec.message());
  char host[256] = "localhost";
  ::gethostname(host, sizeof host - 1);
  path_ = str_cat(dir, "/events.out.tfevents.", static_cast<int64_t>(unix_seconds()), ".", host,
                  ".", ::getpid());
  file_ = std::make_unique<RecordFile>(path_, /*whole_lines=*/false);
  write_record(event(0, 3, "brain.Event:2"));
}

TensorBoardWriter::~TensorBoardWriter() = default;

void TensorBoardWriter::add_scalar(std::string_view tag, double value, int64_t step) {
  // Summary { repeated Value value = 1; }  Value { string tag = 1; float simple_value = 2; }
  std::string v;
  put_bytes(v, 1, tag);
  const float f = static_cast<float>(value);
  put_tag(v, 2, 5);  // 32-bit
  put_fixed(v, &f, 4);
  std::string summary;
  put_bytes(summary, 1, v);
  write_record(event(step, 5, summary));
}

void TensorBoardWriter::write_record(const std::string& data) {
  // uint64 length, uint32 masked_crc(length), data, uint32 masked_crc(data); little-endian.
  const uint64_t n = data.size();
  const uint32_t len_crc = masked_crc(&n, 8);
  const uint32_t data_crc = masked_crc(data.data(), data.size());
  std::string record;
  record.reserve(16 + data.size());
  record.append(reinterpret_cast<const char*>(&n), 8);
  record.append(reinterpret_cast<const char*>(&len_crc), 4);
  record += data;
  record.append(reinterpret_cast<const char*>(&data_crc), 4);
  file_->append(record);
}

}  // namespace meap
