// TensorBoard event files written by hand (no TensorFlow, no protobuf library): scalars of a
// run in RUN_DIR/tensorboard/events.out.tfevents.*, which `tensorboard --logdir RUN_DIR`
// reads. The format (TFRecord framing with masked CRC32C, Event/Summary protobufs) is in
// docs/formats.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace meap {

class RecordFile;

// CRC-32C (Castagnoli), as TFRecord frames use it.
uint32_t crc32c(const void* data, size_t n);

class TensorBoardWriter {
 public:
  // Creates DIR (when missing) and a new event file in it, named as TensorBoard expects
  // (events.out.tfevents.<unix seconds>.<host>.<pid>), starting with the file-version event.
  // meap::Error naming the file when it cannot be written.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One scalar event (a float, as TensorBoard stores simple values) at `step`, written at
  // once so a running TensorBoard sees it and a crash loses nothing written before. A
  // record that cannot be written (a full disk) is cut off whole and reported naming the
  // file (RecordFile), so the file stays readable.
  void add_scalar(std::string_view tag, double value, int64_t step);

  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& event);  // TFRecord framing

  std::string path_;
  std::unique_ptr<RecordFile> file_;
};

}  // namespace meap
