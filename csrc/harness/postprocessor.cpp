#include "harness/postprocessor.h"

#include <algorithm>
#include <cstring>

#include "common/check.h"
#include "kernels/cpu/argmax.h"

namespace mlperf_trt {

ZerosPostprocessor::ZerosPostprocessor(size_t payload_bytes, int64_t tokens, bool first_token)
    : payload_bytes_(payload_bytes), tokens_(tokens), first_token_(first_token) {
  MLPERF_CHECK_CONFIG(!first_token || payload_bytes >= 4,
                      "a first-token payload needs at least 4 bytes, got " << payload_bytes);
}

void ZerosPostprocessor::process(const Batch& batch, const std::vector<TensorView>& /*outputs*/,
                                 Responses& out) {
  const size_t n = batch.size();
  out.reset(n);
  // Every sample points at one shared block of zeros: LoadGen only reads the bytes (and copies
  // them in accuracy mode), so a 3 MB SDXL payload costs nothing per sample.
  out.payload.assign(payload_bytes_, 0);
  for (size_t i = 0; i < n; ++i) out.add(0, payload_bytes_);
  if (tokens_ > 0) out.n_tokens.assign(n, tokens_);
  out.first_token = first_token_;
}

ClassIndexPostprocessor::ClassIndexPostprocessor(size_t output, int64_t offset)
    : output_(output), offset_(offset) {}

void ClassIndexPostprocessor::process(const Batch& batch, const std::vector<TensorView>& outputs,
                                      Responses& out) {
  const size_t n = batch.size();
  MLPERF_CHECK_BACKEND(output_ < outputs.size(),
                       "the engine returned " << outputs.size() << " outputs; the class-index "
                                              << "post-processor reads output " << output_);
  const TensorView& t = outputs[output_];
  MLPERF_CHECK_BACKEND(!t.shape.empty() && static_cast<size_t>(t.shape[0]) == n,
                       "output " << output_ << " has batch dimension "
                                 << (t.shape.empty() ? -1 : t.shape[0]) << ", expected " << n);
  out.reset(n);
  out.payload.resize(n * sizeof(float));
  auto* dst = reinterpret_cast<float*>(out.payload.data());
  if (t.dtype == DType::kFloat32 && t.shape.size() == 2) {
    // Per call, not a member: workers post-process concurrently with one shared instance.
    std::vector<int32_t> classes(n);
    kernels::argmax_rows_f32(static_cast<const float*>(t.data), n,
                             static_cast<size_t>(t.shape[1]), static_cast<size_t>(t.shape[1]),
                             classes.data());
    for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(classes[i] + offset_);
  } else if (t.dtype == DType::kInt64 && t.numel() == n) {
    const auto* src = static_cast<const int64_t*>(t.data);
    for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i] + offset_);
  } else if (t.dtype == DType::kInt32 && t.numel() == n) {
    const auto* src = static_cast<const int32_t*>(t.data);
    for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i] + offset_);
  } else {
    MLPERF_CHECK_BACKEND(false, "class-index post-processor: output "
                                    << output_ << " is " << dtype_name(t.dtype) << " with "
                                    << t.shape.size()
                                    << " dims; expected int64/int32 [N] or float32 [N, C]");
  }
  for (size_t i = 0; i < n; ++i) out.add(i * sizeof(float), sizeof(float));
}

namespace {

const TensorView& output_of(const std::vector<TensorView>& outputs, size_t index, const char* who) {
  MLPERF_CHECK_BACKEND(index < outputs.size(), "the engine returned " << outputs.size()
                                                   << " outputs; the " << who
                                                   << " post-processor reads output " << index);
  return outputs[index];
}

}  // namespace

InterleavePostprocessor::InterleavePostprocessor(std::vector<size_t> outputs, size_t positions,
                                                 float fill)
    : outputs_(std::move(outputs)), positions_(positions), fill_(fill) {
  MLPERF_CHECK_CONFIG(!outputs_.empty() && positions_ > 0,
                      "interleave post-processor needs at least one output and one position");
}

void InterleavePostprocessor::process(const Batch& batch, const std::vector<TensorView>& outputs,
                                      Responses& out) {
  const size_t n = batch.size(), k = outputs_.size();
  std::vector<const float*> src(k);
  size_t length = 0;
  for (size_t j = 0; j < k; ++j) {
    const TensorView& t = output_of(outputs, outputs_[j], "interleave");
    MLPERF_CHECK_BACKEND(t.dtype == DType::kFloat32 && t.shape.size() == 2 &&
                             static_cast<size_t>(t.shape[0]) == n,
                         "output " << outputs_[j] << " is " << dtype_name(t.dtype) << " with "
                                   << t.shape.size() << " dims; expected float32 [" << n
                                   << ", L]");
    const size_t l = static_cast<size_t>(t.shape[1]);
    MLPERF_CHECK_BACKEND(j == 0 || l == length, "outputs of the interleave post-processor differ"
                                                    << " in length: " << length << " and " << l);
    MLPERF_CHECK_BACKEND(l <= positions_, "output " << outputs_[j] << " has " << l
                                                    << " positions, more than the payload's "
                                                    << positions_);
    length = l;
    src[j] = static_cast<const float*>(t.data);
  }
  const size_t bytes = positions_ * k * sizeof(float);
  out.reset(n);
  out.payload.resize(n * bytes);
  for (size_t i = 0; i < n; ++i) {
    auto* dst = reinterpret_cast<float*>(out.payload.data() + i * bytes);
    for (size_t p = 0; p < length; ++p) {
      for (size_t j = 0; j < k; ++j) dst[p * k + j] = src[j][i * length + p];
    }
    std::fill(dst + length * k, dst + positions_ * k, fill_);
    out.add(i * bytes, bytes);
  }
}

RowsPostprocessor::RowsPostprocessor(size_t output) : output_(output) {}

void RowsPostprocessor::process(const Batch& batch, const std::vector<TensorView>& outputs,
                                Responses& out) {
  const size_t n = batch.size();
  const TensorView& t = output_of(outputs, output_, "rows");
  MLPERF_CHECK_BACKEND(t.dtype == DType::kFloat32 && !t.shape.empty(),
                       "output " << output_ << " is " << dtype_name(t.dtype)
                                 << "; expected float32 [rows, k]");
  const size_t rows = static_cast<size_t>(t.shape[0]);
  const size_t row_bytes = rows == 0 ? 0 : t.numel() / rows * sizeof(float);
  uint64_t total = 0;
  for (uint32_t c : batch.costs) total += c;
  MLPERF_CHECK_BACKEND(rows == total, "output " << output_ << " has " << rows
                                                << " rows; the batch's samples hold " << total);
  out.reset(n);
  out.payload.resize(rows * row_bytes);
  if (rows > 0) std::memcpy(out.payload.data(), t.data, rows * row_bytes);
  size_t offset = 0;
  for (size_t i = 0; i < n; ++i) {
    const size_t bytes = batch.costs[i] * row_bytes;
    out.add(offset, bytes);
    offset += bytes;
  }
}

BytesPostprocessor::BytesPostprocessor(size_t output) : output_(output) {}

void BytesPostprocessor::process(const Batch& batch, const std::vector<TensorView>& outputs,
                                 Responses& out) {
  const size_t n = batch.size();
  const TensorView& t = output_of(outputs, output_, "bytes");
  MLPERF_CHECK_BACKEND(!t.shape.empty() && static_cast<size_t>(t.shape[0]) == n,
                       "output " << output_ << " has batch dimension "
                                 << (t.shape.empty() ? -1 : t.shape[0]) << ", expected " << n);
  const size_t bytes = t.nbytes();
  const size_t row = n == 0 ? 0 : bytes / n;
  out.reset(n);
  out.payload.resize(bytes);
  if (bytes > 0) std::memcpy(out.payload.data(), t.data, bytes);
  for (size_t i = 0; i < n; ++i) out.add(i * row, row);
}

}  // namespace mlperf_trt
