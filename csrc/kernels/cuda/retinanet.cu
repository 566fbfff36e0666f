// CUDA twin of kernels/cpu/retinanet.cpp (SPEC §2.2). Same candidates, same order, same boxes:
// the arithmetic is detection_math.h on both sides, and every ordering uses the same unique
// 64-bit keys (score bits, then the complement of an index), so no sort stability or atomic
// ordering can change the result.
//
//   1. select_kernel: sigmoid + threshold of every (anchor, class); passing candidates are
//      appended (warp-aggregated atomics) to their level's region of the key buffer as
//      candidate_key(score, flat index within the level); the order there is arbitrary.
//   2. host: read the per-level counts (one stream sync); per level a CUB radix sort of the keys,
//      descending; decode_kernel decodes the best topk into the candidate arrays (level order).
//   3. order_kernel + a CUB sort of candidate_key(score, position): the global NMS order; gather.
//   4. mask_kernel: bit j of row i (j > i, 64 columns per word) = same label and IoU > threshold.
//   5. sweep_kernel: one block walks the rows in order, keeps a row not yet removed and ORs its
//      mask into the removed set, until max_detections are kept (torchvision's greedy NMS).
#include <cuda_runtime.h>

#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <vector>

#include "common/check.h"
#include "kernels/cpu/detection_math.h"
#include "kernels/cpu/retinanet.h"
#include "kernels/cuda/kernels.h"

namespace mlperf_trt::kernels::cuda {
namespace {

using detection::Box;

constexpr int kMaxLevels = 8;
constexpr int kThreads = 256;
constexpr float kLogitPrefilter = -2.95f;  // as the CPU twin: sigmoid(-2.95) < 0.05

struct Levels {
  int count;
  size_t begin[kMaxLevels + 1];  // first flat (anchor * C + class) index of each level, and end
};

__global__ void select_kernel(const float* __restrict__ logits, Levels levels, float threshold,
                              unsigned* __restrict__ counts, uint64_t* __restrict__ keys) {
  const size_t n = levels.begin[levels.count];
  const unsigned lane = threadIdx.x % 32;
  const size_t warp = (blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x) / 32;
  const size_t warps = static_cast<size_t>(gridDim.x) * blockDim.x / 32;
  // Warp-uniform loop: every lane takes part in the ballots.
  for (size_t base = warp * 32; base < n; base += warps * 32) {
    const size_t i = base + lane;
    int level = -1;
    float score = 0.0f;
    if (i < n) {
      const float x = logits[i];
      if (x > kLogitPrefilter) {
        score = detection::sigmoid_score(x);
        if (score > threshold) {
          level = 0;
          while (i >= levels.begin[level + 1]) ++level;
        }
      }
    }
    const unsigned group = __match_any_sync(0xFFFFFFFFu, level);
    if (level >= 0) {
      const int leader = __ffs(group) - 1;
      unsigned slot = 0;
      if (static_cast<int>(lane) == leader) slot = atomicAdd(&counts[level], __popc(group));
      slot = __shfl_sync(group, slot, leader);
      slot += __popc(group & ((1u << lane) - 1u));
      const size_t within = i - levels.begin[level];
      keys[levels.begin[level] + slot] =
          detection::candidate_key(score, static_cast<uint32_t>(within));
    }
  }
}

struct Candidates {
  Box* boxes;
  float* scores;
  int32_t* labels;
};

__global__ void decode_kernel(const uint64_t* __restrict__ sorted, size_t n, const float* logits,
                              const float* __restrict__ deltas, const float* __restrict__ anchors,
                              size_t first_anchor, size_t classes, float image_size,
                              Candidates out, size_t position) {
  const size_t k = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (k >= n) return;
  const uint32_t index = detection::key_index(sorted[k]);
  const size_t anchor = first_anchor + index / classes;
  out.boxes[position + k] = detection::decode_box(anchors + anchor * 4, deltas + anchor * 4,
                                                  image_size);
  out.scores[position + k] = detection::sigmoid_score(logits[first_anchor * classes + index]);
  out.labels[position + k] = static_cast<int32_t>(index % classes);
}

__global__ void order_kernel(const float* __restrict__ scores, size_t n, uint64_t* keys) {
  const size_t p = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (p < n) keys[p] = detection::candidate_key(scores[p], static_cast<uint32_t>(p));
}

__global__ void gather_kernel(const uint64_t* __restrict__ order, size_t n, Candidates in,
                              Candidates out) {
  const size_t r = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (r >= n) return;
  const uint32_t p = detection::key_index(order[r]);
  out.boxes[r] = in.boxes[p];
  out.scores[r] = in.scores[p];
  out.labels[r] = in.labels[p];
}

// Block (col_block, row_block), 64 threads: thread t computes the word of row
// row_block * 64 + t for columns col_block * 64 .. + 63 (only col_block >= row_block is read).
__global__ void mask_kernel(Candidates c, size_t n, double threshold, size_t words,
                            uint64_t* __restrict__ mask) {
  const size_t row_block = blockIdx.y, col_block = blockIdx.x;
  if (col_block < row_block) return;
  __shared__ Box col_boxes[64];
  __shared__ int32_t col_labels[64];
  const size_t col0 = col_block * 64;
  const size_t cols = n - col0 < 64 ? n - col0 : 64;
  if (threadIdx.x < cols) {
    col_boxes[threadIdx.x] = c.boxes[col0 + threadIdx.x];
    col_labels[threadIdx.x] = c.labels[col0 + threadIdx.x];
  }
  __syncthreads();
  const size_t i = row_block * 64 + threadIdx.x;
  if (i >= n) return;
  const Box box = c.boxes[i];
  const int32_t label = c.labels[i];
  uint64_t bits = 0;
  for (size_t t = 0; t < cols; ++t) {
    const size_t j = col0 + t;
    if (j > i && col_labels[t] == label && detection::iou_above(box, col_boxes[t], threshold)) {
      bits |= 1ull << t;
    }
  }
  mask[i * words + col_block] = bits;
}

__global__ void sweep_kernel(const uint64_t* __restrict__ mask, size_t n, size_t words,
                             size_t max_detections, Candidates c, Detection* __restrict__ out,
                             unsigned* __restrict__ kept_count) {
  extern __shared__ uint64_t removed[];
  for (size_t w = threadIdx.x; w < words; w += blockDim.x) removed[w] = 0;
  size_t kept = 0;
  for (size_t i = 0; i < n && kept < max_detections; ++i) {
    __syncthreads();
    const bool is_removed = (removed[i / 64] >> (i % 64)) & 1ull;
    __syncthreads();
    if (is_removed) continue;  // uniform across the block
    if (threadIdx.x == 0) {
      const Box& b = c.boxes[i];
      out[kept] = Detection{b.x1, b.y1, b.x2, b.y2, c.scores[i], c.labels[i]};
    }
    ++kept;
    for (size_t w = i / 64 + threadIdx.x; w < words; w += blockDim.x) {
      removed[w] |= mask[i * words + w];
    }
  }
  if (threadIdx.x == 0) *kept_count = static_cast<unsigned>(kept);
}

size_t align_up(size_t n) { return (n + 255) / 256 * 256; }

// The workspace, carved in this order; the same arithmetic sizes and places it.
struct Layout {
  size_t counts, keys, keys_alt, temp, temp_bytes;
  size_t cand_boxes, cand_scores, cand_labels;
  size_t sorted_boxes, sorted_scores, sorted_labels;
  size_t order, order_alt, mask, detections, kept, total;
  size_t max_candidates, words;
};

Layout layout_for(size_t anchors, size_t classes, const std::vector<size_t>& level_sizes,
                  const RetinaNetParams& params) {
  check_retinanet_shapes(anchors, classes, level_sizes, params);
  MLPERF_CHECK_KERNEL(level_sizes.size() <= static_cast<size_t>(kMaxLevels),
                      "retinanet_decode_nms (CUDA): at most " << kMaxLevels << " levels, got "
                                                             << level_sizes.size());
  size_t largest = 0;
  for (size_t s : level_sizes) largest = std::max(largest, s * classes);
  MLPERF_CHECK_KERNEL(largest < (size_t{1} << 31),
                      "retinanet_decode_nms (CUDA): a level holds " << largest
                                                                   << " scores, more than 2^31");
  Layout l{};
  l.max_candidates = params.topk_per_level * level_sizes.size();
  l.words = (l.max_candidates + 63) / 64;
  // The sweep keeps one bit per candidate in shared memory.
  MLPERF_CHECK_KERNEL(l.words * sizeof(uint64_t) <= 48 * 1024,
                      "retinanet_decode_nms (CUDA): topk_per_level x levels = "
                          << l.max_candidates << " candidates, more than the NMS sweep's "
                          << 48 * 1024 * 8);
  size_t temp_level = 0, temp_order = 0;
  MLPERF_CUDA_CHECK(cub::DeviceRadixSort::SortKeysDescending(
      nullptr, temp_level, static_cast<const uint64_t*>(nullptr), static_cast<uint64_t*>(nullptr),
      static_cast<int>(std::max<size_t>(largest, 1))));
  MLPERF_CUDA_CHECK(cub::DeviceRadixSort::SortKeysDescending(
      nullptr, temp_order, static_cast<const uint64_t*>(nullptr), static_cast<uint64_t*>(nullptr),
      static_cast<int>(l.max_candidates)));
  l.temp_bytes = std::max(temp_level, temp_order);
  size_t at = 0;
  const auto take = [&at](size_t bytes) {
    const size_t here = at;
    at += align_up(bytes);
    return here;
  };
  l.counts = take(kMaxLevels * sizeof(unsigned));
  l.keys = take(anchors * classes * sizeof(uint64_t));
  l.keys_alt = take(largest * sizeof(uint64_t));
  l.temp = take(l.temp_bytes);
  l.cand_boxes = take(l.max_candidates * sizeof(Box));
  l.cand_scores = take(l.max_candidates * sizeof(float));
  l.cand_labels = take(l.max_candidates * sizeof(int32_t));
  l.sorted_boxes = take(l.max_candidates * sizeof(Box));
  l.sorted_scores = take(l.max_candidates * sizeof(float));
  l.sorted_labels = take(l.max_candidates * sizeof(int32_t));
  l.order = take(l.max_candidates * sizeof(uint64_t));
  l.order_alt = take(l.max_candidates * sizeof(uint64_t));
  l.mask = take(l.max_candidates * l.words * sizeof(uint64_t));
  l.detections = take(params.max_detections * sizeof(Detection));
  l.kept = take(sizeof(unsigned));
  l.total = at;
  return l;
}

unsigned blocks_for(size_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

}  // namespace

size_t retinanet_workspace_bytes(size_t anchors, size_t classes,
                                 const std::vector<size_t>& level_sizes,
                                 const RetinaNetParams& params) {
  return layout_for(anchors, classes, level_sizes, params).total;
}

size_t retinanet_decode_nms(const float* cls_logits, const float* bbox_regression,
                            const float* anchor_boxes, size_t anchors, size_t classes,
                            const std::vector<size_t>& level_sizes, const RetinaNetParams& params,
                            void* workspace, size_t workspace_bytes, Detection* out,
                            Stream stream) {
  const Layout l = layout_for(anchors, classes, level_sizes, params);
  MLPERF_CHECK_KERNEL(workspace_bytes >= l.total,
                      "retinanet_decode_nms (CUDA): workspace of " << workspace_bytes
                                                                   << " bytes, needs " << l.total
                                                                   << " (retinanet_workspace_bytes)");
  const auto s = static_cast<cudaStream_t>(stream);
  auto* base = static_cast<uint8_t*>(workspace);
  auto* counts = reinterpret_cast<unsigned*>(base + l.counts);
  auto* keys = reinterpret_cast<uint64_t*>(base + l.keys);
  auto* keys_alt = reinterpret_cast<uint64_t*>(base + l.keys_alt);
  void* temp = base + l.temp;
  const Candidates cand{reinterpret_cast<Box*>(base + l.cand_boxes),
                        reinterpret_cast<float*>(base + l.cand_scores),
                        reinterpret_cast<int32_t*>(base + l.cand_labels)};
  const Candidates sorted{reinterpret_cast<Box*>(base + l.sorted_boxes),
                          reinterpret_cast<float*>(base + l.sorted_scores),
                          reinterpret_cast<int32_t*>(base + l.sorted_labels)};
  auto* order = reinterpret_cast<uint64_t*>(base + l.order);
  auto* order_alt = reinterpret_cast<uint64_t*>(base + l.order_alt);
  auto* mask = reinterpret_cast<uint64_t*>(base + l.mask);
  auto* detections = reinterpret_cast<Detection*>(base + l.detections);
  auto* kept = reinterpret_cast<unsigned*>(base + l.kept);

  // 1. selection.
  Levels levels{};
  levels.count = static_cast<int>(level_sizes.size());
  for (size_t i = 0; i < level_sizes.size(); ++i) {
    levels.begin[i + 1] = levels.begin[i] + level_sizes[i] * classes;
  }
  MLPERF_CUDA_CHECK(cudaMemsetAsync(counts, 0, kMaxLevels * sizeof(unsigned), s));
  const size_t n = anchors * classes;
  if (n > 0) {
    const size_t blocks = std::min<size_t>((n + kThreads - 1) / kThreads, 65535 * 4);
    select_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(
        cls_logits, levels, params.score_threshold, counts, keys);
    MLPERF_CUDA_CHECK(cudaGetLastError());
  }
  unsigned host_counts[kMaxLevels] = {};
  MLPERF_CUDA_CHECK(
      cudaMemcpyAsync(host_counts, counts, sizeof host_counts, cudaMemcpyDeviceToHost, s));
  MLPERF_CUDA_CHECK(cudaStreamSynchronize(s));

  // 2. per level: sort, keep topk, decode.
  size_t total = 0, first_anchor = 0;
  for (size_t lv = 0; lv < level_sizes.size(); ++lv) {
    const size_t count = host_counts[lv];
    if (count > 0) {
      size_t temp_bytes = l.temp_bytes;
      MLPERF_CUDA_CHECK(cub::DeviceRadixSort::SortKeysDescending(
          temp, temp_bytes, keys + levels.begin[lv], keys_alt, static_cast<int>(count), 0, 64, s));
      const size_t keep = std::min(count, params.topk_per_level);
      decode_kernel<<<blocks_for(keep), kThreads, 0, s>>>(
          keys_alt, keep, cls_logits, bbox_regression, anchor_boxes, first_anchor, classes,
          params.image_size, cand, total);
      MLPERF_CUDA_CHECK(cudaGetLastError());
      total += keep;
    }
    first_anchor += level_sizes[lv];
  }
  if (total == 0) return 0;

  // 3. global order: score descending, then position.
  order_kernel<<<blocks_for(total), kThreads, 0, s>>>(cand.scores, total, order);
  MLPERF_CUDA_CHECK(cudaGetLastError());
  size_t temp_bytes = l.temp_bytes;
  MLPERF_CUDA_CHECK(cub::DeviceRadixSort::SortKeysDescending(
      temp, temp_bytes, order, order_alt, static_cast<int>(total), 0, 64, s));
  gather_kernel<<<blocks_for(total), kThreads, 0, s>>>(order_alt, total, cand, sorted);
  MLPERF_CUDA_CHECK(cudaGetLastError());

  // 4-5. bitmask NMS and the greedy sweep.
  const size_t blocks = (total + 63) / 64;
  mask_kernel<<<dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(blocks)), 64, 0, s>>>(
      sorted, total, params.iou_threshold, l.words, mask);
  MLPERF_CUDA_CHECK(cudaGetLastError());
  sweep_kernel<<<1, kThreads, l.words * sizeof(uint64_t), s>>>(
      mask, total, l.words, params.max_detections, sorted, detections, kept);
  MLPERF_CUDA_CHECK(cudaGetLastError());
  unsigned host_kept = 0;
  MLPERF_CUDA_CHECK(cudaMemcpyAsync(&host_kept, kept, sizeof host_kept, cudaMemcpyDeviceToHost, s));
  MLPERF_CUDA_CHECK(cudaStreamSynchronize(s));
  if (host_kept > 0) {
    MLPERF_CUDA_CHECK(cudaMemcpyAsync(out, detections, host_kept * sizeof(Detection),
                                      cudaMemcpyDeviceToHost, s));
    MLPERF_CUDA_CHECK(cudaStreamSynchronize(s));
  }
  return host_kept;
}

}  // namespace mlperf_trt::kernels::cuda
