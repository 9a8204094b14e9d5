#include "meap/core/safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>

#include "meap/core/error.hpp"
#include "meap/core/file_io.hpp"

namespace meap {

// Tensor bytes go to and from disk with memcpy; the format is little endian (as
// mapped_file.hpp asserts of the host).
namespace {

using Json = nlohmann::json;

// The reference implementation refuses larger headers; a length beyond it means corruption
// rather than a real file, and checking it first avoids parsing garbage.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// numel(shape) * dtype_size(dtype), or false when a dimension is negative or it overflows.
bool checked_nbytes(DType dtype, const std::vector<int64_t>& shape, size_t* out) {
  size_t n = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  *out = n;
  return true;
}

// nlohmann refuses to dump strings that are not UTF-8; finding out at add() time names the
// culprit, where write() could only fail on the whole header.
bool is_valid_utf8(const std::string& s) {
  try {
    (void)Json(s).dump();
    return true;
  } catch (const Json::exception&) {
    return false;
  }
}

uint64_t get_u64(const Json& v, const std::string& path, const std::string& name,
                 const char* field) {
  if (!v.is_number_unsigned())
    fail(path, ": tensor '", name, "': ", field, " holds ", v.dump(),
         ", expected a non-negative integer");
  return v.get<uint64_t>();
}

SafetensorsTensorInfo parse_entry(const std::string& path, const std::string& name,
                                  const Json& entry, size_t data_size) {
  if (!entry.is_object())
    fail(path, ": tensor '", name, "': header entry is ", entry.type_name(), ", expected an object");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(field)) fail(path, ": tensor '", name, "': header entry has no '", field, "'");

  SafetensorsTensorInfo info;
  info.name = name;

  const Json& dtype = entry["dtype"];
  if (!dtype.is_string())
    fail(path, ": tensor '", name, "': dtype is ", dtype.dump(), ", expected a string");
  try {
    info.dtype = dtype_from_name(dtype.get<std::string>());
  } catch (const Error& e) {
    fail(path, ": tensor '", name, "': ", e.what());
  }

  const Json& shape = entry["shape"];
  if (!shape.is_array())
    fail(path, ": tensor '", name, "': shape is ", shape.dump(), ", expected an array");
  for (const Json& d : shape) {
    const uint64_t v = get_u64(d, path, name, "shape");
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(path, ": tensor '", name, "': dimension ", v, " is too large");
    info.shape.push_back(static_cast<int64_t>(v));
  }
  if (!checked_nbytes(info.dtype, info.shape, &info.nbytes))
    fail(path, ": tensor '", name, "': shape ", shape_string(info.shape), " is too large");

  const Json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail(path, ": tensor '", name, "': data_offsets is ", offsets.dump(),
         ", expected [begin, end]");
  const uint64_t begin = get_u64(offsets[0], path, name, "data_offsets");
  const uint64_t end = get_u64(offsets[1], path, name, "data_offsets");
  if (begin > end)
    fail(path, ": tensor '", name, "': data_offsets [", begin, ", ", end, "] end before they begin");
  if (end > data_size)
    fail(path, ": tensor '", name, "': data_offsets [", begin, ", ", end,
         "] reach past the end of the data region (", data_size,
         " bytes); the file is truncated or corrupt");
  if (end - begin != info.nbytes)
    fail(path, ": tensor '", name, "': data_offsets [", begin, ", ", end, "] span ", end - begin,
         " bytes but ", dtype_name(info.dtype), " ", shape_string(info.shape), " needs ",
         info.nbytes);
  info.offset = static_cast<size_t>(begin);
  return info;
}

// Every byte of the data region belongs to exactly one tensor; anything else means the
// header and the data disagree, which the reference implementation also refuses.
void check_tiling(const std::string& path, const std::vector<SafetensorsTensorInfo>& tensors,
                  size_t data_size) {
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto& x = tensors[a];
    const auto& y = tensors[b];
    return x.offset != y.offset ? x.offset < y.offset : x.nbytes < y.nbytes;
  });
  size_t covered = 0;
  const SafetensorsTensorInfo* previous = nullptr;
  for (size_t i : order) {
    const auto& t = tensors[i];
    if (t.offset < covered)
      fail(path, ": tensor '", t.name, "' (bytes ", t.offset, "..", t.offset + t.nbytes,
           ") overlaps tensor '", previous->name, "' (bytes ", previous->offset, "..",
           previous->offset + previous->nbytes, ")");
    if (t.offset > covered)
      fail(path, ": ", t.offset - covered, " bytes before tensor '", t.name,
           "' (data offset ", t.offset, ") belong to no tensor; the header is corrupt");
    covered = t.offset + t.nbytes;
    previous = &t;
  }
  if (covered != data_size)
    fail(path, ": the data region has ", data_size, " bytes but the tensors cover ", covered,
         "; the file has trailing garbage or a corrupt header");
}

}  // namespace

// ---- SafetensorsWriter ------------------------------------------------------------

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            const void* data) {
  if (name.empty()) fail("safetensors: a tensor name must not be empty");
  if (name == kMetadataKey) fail("safetensors: '", kMetadataKey, "' is reserved, not a tensor name");
  if (!is_valid_utf8(name)) fail("safetensors: tensor name '", name, "' is not valid UTF-8");
  if (tensors_.count(name)) fail("safetensors: tensor '", name, "' was added twice");
  size_t nbytes = 0;
  if (!checked_nbytes(dtype, shape, &nbytes))
    fail("safetensors: tensor '", name, "' has an invalid shape ", shape_string(shape));
  if (nbytes > 0 && data == nullptr) fail("safetensors: tensor '", name, "' has no data");

  Entry entry{dtype, std::move(shape), {}};
  const char* p = static_cast<const char*>(data);
  if (nbytes > 0) entry.bytes.assign(p, p + nbytes);
  tensors_.emplace(name, std::move(entry));
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  if (!is_valid_utf8(key) || !is_valid_utf8(value))
    fail("safetensors: metadata '", key, "' is not valid UTF-8");
  metadata_[key] = value;
}

void SafetensorsWriter::write(const std::string& path) const {
  Json header = Json::object();
  size_t offset = 0;
  for (const auto& [name, entry] : tensors_) {
    Json item = Json::object();
    item["dtype"] = std::string(dtype_name(entry.dtype));
    item["shape"] = entry.shape;
    item["data_offsets"] = Json::array({offset, offset + entry.bytes.size()});
    header[name] = std::move(item);
    offset += entry.bytes.size();
  }
  if (!metadata_.empty()) header[kMetadataKey] = metadata_;

  std::string text = header.dump();
  // The spec pads the header so the data region starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(uint64_t{text.size()} >> (8 * i));

  TempFile tmp(path + ".tmp");
  write_all(tmp.fd(), reinterpret_cast<const char*>(length), sizeof length, tmp.path());
  write_all(tmp.fd(), text.data(), text.size(), tmp.path());
  for (const auto& [name, entry] : tensors_)
    write_all(tmp.fd(), entry.bytes.data(), entry.bytes.size(), tmp.path());
  tmp.sync_and_close();
  tmp.commit_as(path);
}

// ---- SafetensorsFile ----------------------------------------------------------------

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  f.file_ = MappedFile::open(path, "safetensors file", "a", 8);
  const auto* b = reinterpret_cast<const char*>(f.file_.data());
  const uint64_t size = f.file_.size();
  const uint64_t header_len = load_le<uint64_t>(f.file_.data());
  if (header_len > kMaxHeaderBytes)
    fail(path, ": header length ", header_len,
         " exceeds the 100 MB limit; this is not a safetensors file or it is corrupt");
  if (header_len > size - 8)
    fail(path, ": header length ", header_len, " exceeds the ", size - 8,
         " bytes that follow it; the file is truncated or corrupt");
  f.data_start_ = 8 + static_cast<size_t>(header_len);
  const size_t data_size = size - f.data_start_;

  Json header;
  try {
    header = Json::parse(b + 8, b + f.data_start_);
  } catch (const Json::exception& e) {
    fail(path, ": the header is not valid JSON (corrupt file?): ", e.what());
  }
  if (!header.is_object())
    fail(path, ": the header is JSON ", header.type_name(), ", expected an object");

  // Json objects iterate in key order, which gives tensors() its name order.
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      if (value.is_null()) continue;
      if (!value.is_object()) fail(path, ": ", kMetadataKey, " is not a JSON object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          fail(path, ": metadata '", mk, "' is ", mv.dump(), ", expected a string");
        f.metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    f.index_[key] = f.tensors_.size();
    f.tensors_.push_back(parse_entry(path, key, value, data_size));
  }
  check_tiling(path, f.tensors_, data_size);
  return f;
}

bool SafetensorsFile::has(const std::string& name) const { return index_.count(name) != 0; }

const SafetensorsTensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) fail("tensor '", name, "' not found in ", path_);
  return tensors_[it->second];
}

const void* SafetensorsFile::data(const std::string& name) const {
  return file_.data() + data_start_ + info(name).offset;
}

void SafetensorsFile::read(const std::string& name, DType dtype,
                           const std::vector<int64_t>& shape, void* dst) const {
  const SafetensorsTensorInfo& t = info(name);
  if (t.dtype != dtype || t.shape != shape)
    fail("tensor '", name, "' in ", path_, ": expected ", dtype_name(dtype), " ",
         shape_string(shape), ", found ", dtype_name(t.dtype), " ", shape_string(t.shape));
  if (t.nbytes > 0) std::memcpy(dst, file_.data() + data_start_ + t.offset, t.nbytes);
}

}  // namespace meap
