// Non-owning views of host tensors passed between the harness stages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/check.h"

namespace mlperf_trt {

enum class DType : int { kFloat32 = 0, kFloat16, kInt64, kInt32, kInt8, kUInt8, kBool };

inline size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return 4;
    case DType::kFloat16: return 2;
    case DType::kInt64: return 8;
    case DType::kInt32: return 4;
    case DType::kInt8: return 1;
    case DType::kUInt8: return 1;
    case DType::kBool: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kFloat16: return "float16";
    case DType::kInt64: return "int64";
    case DType::kInt32: return "int32";
    case DType::kInt8: return "int8";
    case DType::kUInt8: return "uint8";
    case DType::kBool: return "bool";
  }
  return "?";
}

inline DType dtype_from_name(const std::string& name) {
  static const char* names[] = {"float32", "float16", "int64", "int32", "int8", "uint8", "bool"};
  for (int i = 0; i < 7; ++i) {
    if (name == names[i]) return static_cast<DType>(i);
  }
  MLPERF_CHECK_CONFIG(false, "unknown dtype '" << name
                                              << "'; expected one of float32, float16, int64, "
                                                 "int32, int8, uint8, bool");
}

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;

  size_t numel() const {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    return n;
  }
  size_t nbytes() const { return numel() * dtype_size(dtype); }
};

}  // namespace mlperf_trt
