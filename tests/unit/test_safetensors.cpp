// safetensors reader/writer: round trips, atomic writes, refusal of malformed files, and
// interoperability with the reference Python implementation when the venv has it.
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "meap/core/dtype.hpp"
#include "meap/core/error.hpp"
#include "meap/core/safetensors.hpp"
#include "fixtures.hpp"

namespace {

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using meap::DType;
using meap::SafetensorsFile;
using meap::SafetensorsWriter;

struct TempDir : meap_test::TempDir {
  TempDir() : meap_test::TempDir("meap_safetensors") {}
};

using meap_test::error_of;

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  REQUIRE(out);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out);
}

uint64_t header_length(const std::vector<char>& bytes) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
  return n;
}

// A file with exactly this header text followed by data_size bytes, for malformed inputs the
// writer can never produce.
void write_raw(const std::string& path, const std::string& header, size_t data_size) {
  std::vector<char> bytes(8);
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(uint64_t{header.size()} >> (8 * i));
  bytes.insert(bytes.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_size; ++i) bytes.push_back(static_cast<char>(i));
  write_bytes(path, bytes);
}

struct Sample {
  std::vector<float> f32;      // (2, 3)
  std::vector<double> f64;     // (4)
  std::vector<uint16_t> bf16;  // (3, 2)
  std::vector<int32_t> i32;    // (5)
  float scalar = 42.5f;        // ()

  Sample() {
    for (int i = 0; i < 6; ++i) f32.push_back(0.5f * static_cast<float>(i) - 1.25f);
    f64 = {1e-300, 3.141592653589793, -2.5, 1e300};
    for (float v : {1.0f, -2.5f, 3.140625f, 0.0078125f, -0.0f, 65280.0f})
      bf16.push_back(meap::f32_to_bf16(v));
    i32 = {-7, 0, 1, INT32_MAX, INT32_MIN};
  }

  void add_to(SafetensorsWriter& w) const {
    w.add("w.f32", DType::f32, {2, 3}, f32.data());
    w.add("w.f64", DType::f64, {4}, f64.data());
    w.add("emb.bf16", DType::bf16, {3, 2}, bf16.data());
    w.add("ids", DType::i32, {5}, i32.data());
    w.add("scalar", DType::f32, {}, &scalar);
    w.add("empty", DType::f32, {0, 3}, nullptr);
  }
};

// A valid two-tensor file whose bytes the corruption tests then damage.
std::vector<char> valid_file_bytes(const TempDir& dir) {
  const std::vector<float> a = {1, 2, 3, 4};
  const std::vector<int32_t> b = {5, 6};
  SafetensorsWriter w;
  w.add("a", DType::f32, {2, 2}, a.data());
  w.add("b", DType::i32, {2}, b.data());
  const std::string path = dir.file("valid.safetensors");
  w.write(path);
  return read_bytes(path);
}

}  // namespace

TEST_CASE("safetensors: f32/f64/bf16/i32 tensors and metadata survive a round trip",
          "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const Sample s;
  SafetensorsWriter w;
  s.add_to(w);
  w.set_metadata("format", "pt");
  w.set_metadata("step", "0");
  w.set_metadata("step", "17");  // the later value wins
  w.write(path);

  CHECK_FALSE(fs::exists(path + ".tmp"));
  const std::vector<char> raw = read_bytes(path);
  CHECK(header_length(raw) % 8 == 0);

  const SafetensorsFile f = SafetensorsFile::open(path);
  REQUIRE(f.tensors().size() == 6);
  std::vector<std::string> names;
  for (const auto& t : f.tensors()) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"emb.bf16", "empty", "ids", "scalar", "w.f32", "w.f64"});
  CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"step", "17"}});
  CHECK(f.has("ids"));
  CHECK_FALSE(f.has("nope"));

  const auto& info = f.info("w.f32");
  CHECK(info.dtype == DType::f32);
  CHECK(info.shape == std::vector<int64_t>{2, 3});
  CHECK(info.nbytes == 24);
  CHECK(std::memcmp(f.data("w.f32"), s.f32.data(), 24) == 0);
  CHECK(f.info("scalar").shape.empty());
  CHECK(f.info("scalar").nbytes == 4);
  CHECK(f.info("empty").nbytes == 0);

  std::vector<float> f32(6);
  f.read("w.f32", DType::f32, {2, 3}, f32.data());
  CHECK(f32 == s.f32);
  std::vector<double> f64(4);
  f.read("w.f64", DType::f64, {4}, f64.data());
  CHECK(f64 == s.f64);
  std::vector<uint16_t> bf16(6);
  f.read("emb.bf16", DType::bf16, {3, 2}, bf16.data());
  CHECK(bf16 == s.bf16);
  CHECK(meap::bf16_to_f32(bf16[2]) == 3.140625f);
  std::vector<int32_t> i32(5);
  f.read("ids", DType::i32, {5}, i32.data());
  CHECK(i32 == s.i32);
  float scalar = 0;
  f.read("scalar", DType::f32, {}, &scalar);
  CHECK(scalar == 42.5f);
  f.read("empty", DType::f32, {0, 3}, nullptr);

  // Byte-exact layout: the data region holds every tensor once, in name order.
  CHECK(raw.size() == 8 + header_length(raw) + 12 + 0 + 20 + 4 + 24 + 32);
  CHECK(f.info("emb.bf16").offset == 0);
  CHECK(f.info("w.f64").offset == 12 + 20 + 4 + 24);
}

TEST_CASE("safetensors: add() copies, so the caller's buffer may change afterwards",
          "[safetensors]") {
  TempDir dir;
  std::vector<float> v = {1, 2, 3};
  SafetensorsWriter w;
  w.add("v", DType::f32, {3}, v.data());
  v.assign({9, 9, 9});
  w.write(dir.file("x.safetensors"));
  std::vector<float> back(3);
  SafetensorsFile::open(dir.file("x.safetensors")).read("v", DType::f32, {3}, back.data());
  CHECK(back == std::vector<float>{1, 2, 3});
}

TEST_CASE("safetensors: write() replaces an existing file", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  const float one = 1, two = 2;
  SafetensorsWriter first;
  first.add("old", DType::f32, {}, &one);
  first.write(path);
  SafetensorsWriter second;
  second.add("new", DType::f32, {}, &two);
  second.write(path);

  const SafetensorsFile f = SafetensorsFile::open(path);
  CHECK_FALSE(f.has("old"));
  REQUIRE(f.has("new"));
  CHECK(*static_cast<const float*>(f.data("new")) == 2.0f);
  CHECK_FALSE(fs::exists(path + ".tmp"));
}

TEST_CASE("safetensors: a failed write names the path and leaves no temporary file",
          "[safetensors]") {
  TempDir dir;
  const float x = 1;
  SafetensorsWriter w;
  w.add("x", DType::f32, {}, &x);

  const std::string missing = dir.file("no_such_dir/x.safetensors");
  const std::string msg = error_of([&] { w.write(missing); });
  CHECK_THAT(msg, Contains(missing));
  CHECK_THAT(msg, Contains("No such file or directory"));

  // The temporary file is written, then the rename onto a directory fails.
  const std::string target = dir.file("a_directory");
  fs::create_directories(target);
  const std::string msg2 = error_of([&] { w.write(target); });
  CHECK_THAT(msg2, Contains(target));
  CHECK_THAT(msg2, Contains("rename"));
  CHECK_FALSE(fs::exists(target + ".tmp"));
  CHECK(fs::is_directory(target));
}

TEST_CASE("safetensors: the writer refuses duplicate and reserved names and bad shapes",
          "[safetensors]") {
  const float v[4] = {1, 2, 3, 4};
  SafetensorsWriter w;
  w.add("layer.0.w", DType::f32, {4}, v);
  const std::string msg = error_of([&] { w.add("layer.0.w", DType::f32, {2, 2}, v); });
  CHECK_THAT(msg, Contains("'layer.0.w'"));
  CHECK_THAT(msg, Contains("twice"));
  CHECK_THAT(error_of([&] { w.add("__metadata__", DType::f32, {4}, v); }), Contains("reserved"));
  CHECK_THAT(error_of([&] { w.add("neg", DType::f32, {2, -2}, v); }), Contains("'neg'"));
  CHECK_THAT(error_of([&] { w.add("null", DType::f32, {4}, nullptr); }), Contains("'null'"));
  CHECK_THAT(error_of([&] { w.add("", DType::f32, {4}, v); }), Contains("empty"));
}

TEST_CASE("safetensors: truncated files are refused", "[safetensors]") {
  TempDir dir;
  const std::vector<char> good = valid_file_bytes(dir);
  const size_t data_start = 8 + header_length(good);
  REQUIRE(good.size() == data_start + 16 + 8);
  const std::string path = dir.file("cut.safetensors");
  for (size_t keep : {size_t{0}, size_t{5}, size_t{8}, size_t{20}, data_start - 1, data_start,
                      data_start + 10, good.size() - 1}) {
    INFO("keeping " << keep << " of " << good.size() << " bytes");
    write_bytes(path, std::vector<char>(good.begin(), good.begin() + keep));
    const std::string msg = error_of([&] { SafetensorsFile::open(path); });
    CHECK_THAT(msg, Contains(path));
  }
  write_bytes(path, std::vector<char>(good.begin(), good.end() - 1));
  const std::string msg = error_of([&] { SafetensorsFile::open(path); });
  CHECK_THAT(msg, Contains("'b'"));  // the last tensor no longer fits
  CHECK_THAT(msg, Contains("truncated"));

  CHECK_THAT(error_of([&] { SafetensorsFile::open(dir.file("absent.safetensors")); }),
             Contains("No such file or directory"));
}

TEST_CASE("safetensors: a corrupt header is refused", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  std::vector<char> bytes = valid_file_bytes(dir);
  bytes[8] = 'X';  // the opening brace of the JSON object
  write_bytes(path, bytes);
  std::string msg = error_of([&] { SafetensorsFile::open(path); });
  CHECK_THAT(msg, Contains(path));
  CHECK_THAT(msg, Contains("not valid JSON"));

  write_raw(path, R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4])", 4);
  CHECK_THAT(error_of([&] { SafetensorsFile::open(path); }), Contains("not valid JSON"));

  write_raw(path, R"([1, 2])", 0);
  CHECK_THAT(error_of([&] { SafetensorsFile::open(path); }), Contains("expected an object"));

  // A length field far beyond any real header (garbage at the start of the file).
  bytes = valid_file_bytes(dir);
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(0xff);
  write_bytes(path, bytes);
  CHECK_THAT(error_of([&] { SafetensorsFile::open(path); }), Contains("100 MB"));

  write_raw(path, R"({"a": {"dtype": "F32", "shape": [1]}})", 4);
  CHECK_THAT(error_of([&] { SafetensorsFile::open(path); }), Contains("data_offsets"));

  write_raw(path, R"({"__metadata__": {"k": 3}})", 0);
  CHECK_THAT(error_of([&] { SafetensorsFile::open(path); }), Contains("'k'"));
}

TEST_CASE("safetensors: offsets outside the data region or inconsistent with the shape are refused",
          "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("offsets.safetensors");

  write_raw(path, R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8);
  std::string msg = error_of([&] { SafetensorsFile::open(path); });
  CHECK_THAT(msg, Contains(path));
  CHECK_THAT(msg, Contains("'w'"));
  CHECK_THAT(msg, Contains("past the end"));

  write_raw(path, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [18446744073709551612, 18446744073709551616]}})", 8);
  CHECK_THAT(error_of([&] { SafetensorsFile::open(path); }), Contains("'w'"));

  write_raw(path, R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8);
  CHECK_THAT(error_of([&] { SafetensorsFile::open(path); }), Contains("needs 12"));

  write_raw(path, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 8);
  CHECK_THAT(error_of([&] { SafetensorsFile::open(path); }), Contains("'w'"));

  write_raw(path, R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 12);
  msg = error_of([&] { SafetensorsFile::open(path); });
  CHECK_THAT(msg, Contains("overlaps"));
  CHECK_THAT(msg, Contains("'a'"));
  CHECK_THAT(msg, Contains("'b'"));

  write_raw(path, R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                      "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})", 12);
  CHECK_THAT(error_of([&] { SafetensorsFile::open(path); }), Contains("belong to no tensor"));

  write_raw(path, R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 8);
  CHECK_THAT(error_of([&] { SafetensorsFile::open(path); }), Contains("trailing"));

  // Tensors need not be stored in name order: "b" first is fine.
  write_raw(path, R"({"a": {"dtype": "I32", "shape": [1], "data_offsets": [4, 8]},
                      "b": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}})", 8);
  const SafetensorsFile f = SafetensorsFile::open(path);
  CHECK(f.info("a").offset == 4);
  CHECK(f.info("b").offset == 0);
}

TEST_CASE("safetensors: unknown dtypes and bad shapes are refused naming the tensor",
          "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("dtype.safetensors");
  for (const char* dtype : {"F16", "U8", "f32", "F8_E4M3"}) {
    write_raw(path,
              std::string(R"({"ok": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},)") +
                  R"("attn.wq": {"dtype": ")" + dtype + R"(", "shape": [2], "data_offsets": [4, 8]}})",
              8);
    const std::string msg = error_of([&] { SafetensorsFile::open(path); });
    CHECK_THAT(msg, Contains("'attn.wq'"));
    CHECK_THAT(msg, Contains(std::string("'") + dtype + "'"));
    CHECK_THAT(msg, Contains(path));
  }

  write_raw(path, R"({"neg": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4);
  CHECK_THAT(error_of([&] { SafetensorsFile::open(path); }), Contains("'neg'"));
  write_raw(path, R"({"frac": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4);
  CHECK_THAT(error_of([&] { SafetensorsFile::open(path); }), Contains("'frac'"));
  write_raw(path, R"({"huge": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", 0);
  CHECK_THAT(error_of([&] { SafetensorsFile::open(path); }), Contains("'huge'"));
}

TEST_CASE("safetensors: read() checks dtype and shape, info() names missing tensors",
          "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  const std::vector<float> v(6, 1.0f);
  SafetensorsWriter w;
  w.add("layers.3.ffn.w1", DType::f32, {2, 3}, v.data());
  w.write(path);
  const SafetensorsFile f = SafetensorsFile::open(path);

  std::vector<float> dst(6, -1.0f);
  std::string msg = error_of([&] { f.read("layers.3.ffn.w1", DType::f32, {3, 2}, dst.data()); });
  CHECK_THAT(msg, Contains("'layers.3.ffn.w1'"));
  CHECK_THAT(msg, Contains("[3, 2]"));
  CHECK_THAT(msg, Contains("[2, 3]"));
  CHECK(dst == std::vector<float>(6, -1.0f));  // nothing copied

  msg = error_of([&] { f.read("layers.3.ffn.w1", DType::f64, {2, 3}, dst.data()); });
  CHECK_THAT(msg, Contains("F64"));
  CHECK_THAT(msg, Contains("F32"));
  CHECK_THAT(error_of([&] { f.read("layers.3.ffn.w1", DType::f32, {6}, dst.data()); }),
             Contains("[6]"));

  msg = error_of([&] { f.info("layers.9.ffn.w1"); });
  CHECK_THAT(msg, Contains("tensor 'layers.9.ffn.w1' not found in " + path));
  CHECK_THROWS_AS(f.data("missing"), meap::Error);
}

TEST_CASE("safetensors: files interoperate with the reference Python implementation",
          "[safetensors][python]") {
  const std::string python = MEAP_SOURCE_DIR "/.venv/bin/python3";
  if (!fs::exists(python)) {
    WARN("skipped: " << python << " does not exist (run scripts/install_deps.sh)");
    return;
  }
  TempDir dir;
  const std::string probe = "'" + python + "' -c 'import numpy, torch, safetensors.numpy' > /dev/null 2>&1";
  if (std::system(probe.c_str()) != 0) {
    WARN("skipped: the venv lacks numpy, torch or safetensors (run scripts/install_deps.sh)");
    return;
  }

  const std::string from_cpp = dir.file("from_cpp.safetensors");
  const std::string from_numpy = dir.file("from_numpy.safetensors");
  const std::string from_raw = dir.file("from_raw.safetensors");
  {
    std::vector<float> a(6);
    for (int i = 0; i < 6; ++i) a[i] = 0.25f * static_cast<float>(i) - 1.0f;
    const std::vector<double> b = {3.141592653589793, -1e-300, 1e300};
    const std::vector<int32_t> c = {INT32_MIN, -1, 0, INT32_MAX};
    std::vector<uint16_t> d;
    for (float x : {1.0f, -2.5f, 3.140625f, 0.0078125f}) d.push_back(meap::f32_to_bf16(x));
    SafetensorsWriter w;
    w.add("a", DType::f32, {2, 3}, a.data());
    w.add("b", DType::f64, {3}, b.data());
    w.add("c", DType::i32, {4}, c.data());
    w.add("d", DType::bf16, {2, 2}, d.data());
    w.set_metadata("source", "meap");
    w.write(from_cpp);
  }

  // numpy has no bfloat16: the official Rust parser's raw view (deserialize) checks the bf16
  // bits, the numpy loader the other tensors.
  const std::string script = dir.file("check.py");
  {
    std::ofstream py(script);
    py << R"PY(
import math, struct, sys
import numpy as np
from safetensors import deserialize, safe_open
from safetensors.numpy import save_file

src, dst_numpy, dst_raw = sys.argv[1:4]

def check(cond, what):
    if not cond:
        sys.exit("mismatch: " + what)

raw = dict(deserialize(open(src, "rb").read()))
check(sorted(raw) == ["a", "b", "c", "d"], "names %s" % sorted(raw))
d = raw["d"]
check(d["dtype"] == "BF16" and list(d["shape"]) == [2, 2], "d header %s" % d)
bits = [struct.unpack("<I", struct.pack("<f", v))[0] >> 16 for v in (1.0, -2.5, 3.140625, 0.0078125)]
check(bytes(d["data"]) == struct.pack("<4H", *bits), "d bits")

with safe_open(src, framework="numpy") as f:
    check(f.metadata() == {"source": "meap"}, "metadata %s" % f.metadata())
    a, b, c = f.get_tensor("a"), f.get_tensor("b"), f.get_tensor("c")
check(a.dtype == np.float32 and a.shape == (2, 3), "a type")
check(np.array_equal(a, np.arange(6, dtype=np.float32).reshape(2, 3) * np.float32(0.25) - np.float32(1)), "a values %s" % a)
check(b.dtype == np.float64 and np.array_equal(b, np.array([math.pi, -1e-300, 1e300])), "b %s" % b)
check(c.dtype == np.int32 and np.array_equal(c, np.array([-2**31, -1, 0, 2**31 - 1], dtype=np.int32)), "c %s" % c)

save_file({
    "x": np.arange(6, dtype=np.float32).reshape(3, 2) * np.float32(-0.5),
    "y": np.array([7, -8, 9], dtype=np.int32),
    "z": np.array([[1e-10, 2.0], [3.0, 4.0]], dtype=np.float64),
    "s": np.array(6.5, dtype=np.float32),
}, dst_numpy, metadata={"writer": "python"})

# numpy has no bfloat16: torch writes the BF16 file through the official torch writer.
import torch
from safetensors.torch import save_file as save_torch
save_torch({
    "h": torch.tensor([1.0, -2.5, 3.140625], dtype=torch.bfloat16),
    "g": torch.tensor([0.75], dtype=torch.float32),
}, dst_raw)
)PY";
  }
  const std::string log = dir.file("python.log");
  const std::string cmd = "'" + python + "' '" + script + "' '" + from_cpp + "' '" + from_numpy +
                          "' '" + from_raw + "' > '" + log + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  {
    const std::vector<char> out = read_bytes(log);
    INFO("python output:\n" << std::string(out.begin(), out.end()));
    REQUIRE(rc == 0);
  }

  const SafetensorsFile np = SafetensorsFile::open(from_numpy);
  CHECK(np.metadata() == std::map<std::string, std::string>{{"writer", "python"}});
  CHECK(np.tensors().size() == 4);
  std::vector<float> x(6);
  np.read("x", DType::f32, {3, 2}, x.data());
  CHECK(x == std::vector<float>{0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -2.5f});
  std::vector<int32_t> y(3);
  np.read("y", DType::i32, {3}, y.data());
  CHECK(y == std::vector<int32_t>{7, -8, 9});
  std::vector<double> z(4);
  np.read("z", DType::f64, {2, 2}, z.data());
  CHECK(z == std::vector<double>{1e-10, 2.0, 3.0, 4.0});
  float s = 0;
  np.read("s", DType::f32, {}, &s);
  CHECK(s == 6.5f);

  const SafetensorsFile rw = SafetensorsFile::open(from_raw);
  CHECK(rw.metadata().empty());
  std::vector<uint16_t> h(3);
  rw.read("h", DType::bf16, {3}, h.data());
  CHECK(meap::bf16_to_f32(h[0]) == 1.0f);
  CHECK(meap::bf16_to_f32(h[1]) == -2.5f);
  CHECK(meap::bf16_to_f32(h[2]) == 3.140625f);
  float g = 0;
  rw.read("g", DType::f32, {1}, &g);
  CHECK(g == 0.75f);
}
