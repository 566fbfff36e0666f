// CUDA twin of kernels/cpu/embedding_bag.cpp: one block per (pair, table), threads across dim
// (4 floats per thread when every address allows), additions in the CPU twin's order.
#include <cuda_runtime.h>

#include <algorithm>

#include "common/check.h"
#include "kernels/cuda/kernels.h"

namespace mlperf_trt::kernels::cuda {
namespace {

constexpr size_t kMaxTablesPerLaunch = 32;  // >= DLRMv2's 26 (SPEC §2.8); ~2 KiB of parameters

struct BagDesc {
  const float* table;
  const int32_t* ids;
  float* out;
  size_t rows, ids_stride, out_stride, hot;
};

struct Bags {
  BagDesc bag[kMaxTablesPerLaunch];
  size_t dim;
};

template <int V>
__global__ void embedding_bag_kernel(const Bags bags, size_t pairs) {
  const BagDesc& b = bags.bag[blockIdx.y];
  const size_t dim = bags.dim;
  for (size_t p = blockIdx.x; p < pairs; p += gridDim.x) {
    const int32_t* ids = b.ids + p * b.ids_stride;
    float* out = b.out + p * b.out_stride;
    for (size_t d = static_cast<size_t>(threadIdx.x) * V; d < dim;
         d += static_cast<size_t>(blockDim.x) * V) {
      float acc[V];
#pragma unroll
      for (int k = 0; k < V; ++k) acc[k] = 0.0f;
      for (size_t h = 0; h < b.hot; ++h) {
        const int32_t id = ids[h];
        if (id < 0 || static_cast<size_t>(id) >= b.rows) continue;  // padding (or unchecked id)
        const float* row = b.table + static_cast<size_t>(id) * dim + d;
        if constexpr (V == 4) {
          const float4 v = *reinterpret_cast<const float4*>(row);
          acc[0] = __fadd_rn(acc[0], v.x);
          acc[1] = __fadd_rn(acc[1], v.y);
          acc[2] = __fadd_rn(acc[2], v.z);
          acc[3] = __fadd_rn(acc[3], v.w);
        } else {
          acc[0] = __fadd_rn(acc[0], row[0]);
        }
      }
      if constexpr (V == 4) {
        *reinterpret_cast<float4*>(out + d) = make_float4(acc[0], acc[1], acc[2], acc[3]);
      } else {
        out[d] = acc[0];
      }
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void embedding_bag_sum_tables(const std::vector<EmbeddingBag>& bags, size_t pairs, Stream stream) {
  if (bags.empty()) return;
  const size_t dim = bags[0].dim;
  bool vec4 = dim % 4 == 0;
  for (const EmbeddingBag& b : bags) {
    MLPERF_CHECK_KERNEL(b.dim == dim, "embedding table " << b.table_index << " has dim " << b.dim
                                                         << ", table " << bags[0].table_index
                                                         << " has " << dim
                                                         << "; one launch needs one dim");
    MLPERF_CHECK_KERNEL(dim > 0, "embedding table " << b.table_index << " has dim 0");
    MLPERF_CHECK_KERNEL(b.out_stride >= dim, "embedding table "
                                                 << b.table_index << ": output row stride "
                                                 << b.out_stride << " < dim " << dim);
    vec4 = vec4 && aligned16(b.table) && aligned16(b.out) && b.out_stride % 4 == 0;
  }
  if (pairs == 0) return;
  const size_t lanes = vec4 ? dim / 4 : dim;
  const auto threads = static_cast<unsigned>(std::min<size_t>(256, (lanes + 31) / 32 * 32));
  const auto grid_x = static_cast<unsigned>(std::min<size_t>(pairs, 1u << 20));
  auto s = static_cast<cudaStream_t>(stream);
  for (size_t first = 0; first < bags.size(); first += kMaxTablesPerLaunch) {
    const size_t count = std::min(kMaxTablesPerLaunch, bags.size() - first);
    Bags params{};
    params.dim = dim;
    for (size_t t = 0; t < count; ++t) {
      const EmbeddingBag& b = bags[first + t];
      params.bag[t] = BagDesc{b.table, b.ids, b.out, b.rows, b.ids_stride, b.out_stride, b.hot};
    }
    const dim3 grid(grid_x, static_cast<unsigned>(count));
    if (vec4) {
      embedding_bag_kernel<4><<<grid, threads, 0, s>>>(params, pairs);
    } else {
      embedding_bag_kernel<1><<<grid, threads, 0, s>>>(params, pairs);
    }
    MLPERF_CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace mlperf_trt::kernels::cuda
