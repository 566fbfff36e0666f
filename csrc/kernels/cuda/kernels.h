// Launchers of the CUDA twins of kernels/cpu (same arguments, device pointers, a stream).
// Plain C++ header: no CUDA types leak to callers.
#pragma once

#include <cstddef>
#include <cstdint>

#include <vector>

#include "kernels/cpu/embedding_bag.h"
#include "kernels/cpu/image.h"
#include "kernels/cpu/retinanet.h"
#include "kernels/cpu/sliding_window.h"

namespace mlperf_trt::kernels::cuda {

using Stream = void*;  // cudaStream_t

void argmax_rows_f32(const float* scores, size_t rows, size_t cols, size_t stride, int32_t* out,
                     Stream stream);
void quantize_int8(const float* x, size_t n, float scale, int8_t* out, Stream stream);
void dequantize_int8(const int8_t* q, size_t n, float scale, float* out, Stream stream);
void crop_normalize_chw_f32(const uint8_t* img, const ImageWindow& w, const float mean[3],
                            const float divisor[3], float* out, Stream stream);
void crop_normalize_chw_i8(const uint8_t* img, const ImageWindow& w, const float mean[3],
                           const float divisor[3], float scale, int8_t* out, Stream stream);

// Row gather (twin of cpu/gather.h), device -> device: src, indices and dst are device memory.
// The indices cannot be checked on the host here: the caller checks them (coalesce_rows does);
// a row whose index is outside [0, src_rows) is written as zeros, never read out of bounds.
// Copies 16, 8 or 4 bytes per load when src, dst, row_bytes and src_stride allow.
void gather_rows(const void* src, size_t src_rows, size_t src_stride, size_t row_bytes,
                 const int64_t* indices, size_t n, void* dst, Stream stream);
// Row gather host -> device: src in host memory (pinned for a truly asynchronous copy), indices
// on the host (checked, kData error), one cudaMemcpyAsync (cudaMemcpy2DAsync for a strided
// source) per run of consecutive indices, queued on `stream`.
void gather_rows_h2d(const void* src, size_t src_rows, size_t src_stride, size_t row_bytes,
                     const int64_t* indices, size_t n, void* dst, Stream stream);

// Embedding-bag sum (twin of cpu/embedding_bag.h) over device tables, ids and outputs; bit-equal
// to the CPU twin (same per-element order of additions). Ids are not checked on the host (the
// caller does, check_embedding_ids); an id outside [0, rows) adds nothing, as -1 padding does.
// One launch per 32 tables.
void embedding_bag_sum_tables(const std::vector<EmbeddingBag>& bags, size_t pairs,
                              Stream stream);

// RetinaNet post-processing of one image (twin of cpu/retinanet.h, same detections): selection
// on the device (sigmoid + threshold with warp-aggregated compaction, one radix sort per level),
// decode, a 64-bit bitmask IoU kernel and a one-block greedy sweep. cls_logits, bbox_regression
// and anchor_boxes are device memory; `workspace` is device memory of at least
// retinanet_workspace_bytes(...) bytes (allocate once, reuse; one call at a time per workspace).
// Synchronises `stream` twice (the per-level candidate counts, then the result) and copies the
// detections to the host array `out` (capacity params.max_detections); returns their number.
size_t retinanet_workspace_bytes(size_t anchors, size_t classes,
                                 const std::vector<size_t>& level_sizes,
                                 const RetinaNetParams& params);
size_t retinanet_decode_nms(const float* cls_logits, const float* bbox_regression,
                            const float* anchor_boxes, size_t anchors, size_t classes,
                            const std::vector<size_t>& level_sizes, const RetinaNetParams& params,
                            void* workspace, size_t workspace_bytes, Detection* out,
                            Stream stream);

// Sliding window (twins of cpu/sliding_window.h, bit-identical). volume, windows, logits, patch,
// result, norm and out are device memory; `origins` is a host array of k (z, y, x) rows, checked
// on the host (kData error) and passed to one launch per window, queued on `stream` in window
// order (so every voxel sums the windows in the CPU twin's order).
void extract_windows(const float* volume, const VolumeShape& shape, const int64_t* origins,
                     size_t k, size_t roi, float* windows, Stream stream);
void accumulate_windows(const float* logits, size_t channels, const int64_t* origins, size_t k,
                        size_t roi, const float* patch, const VolumeShape& shape, float* result,
                        float* norm, Stream stream);
void finalize_argmax(const float* result, const float* norm, size_t channels,
                     const VolumeShape& shape, uint8_t* out, Stream stream);

}  // namespace mlperf_trt::kernels::cuda
