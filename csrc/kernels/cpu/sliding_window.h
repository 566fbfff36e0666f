// 3D-UNet sliding-window inference (SPEC §2.3): windows of roi^3 voxels (128) every `stride`
// voxels (64) on each axis, gaussian importance weights, normalised accumulation, argmax to uint8.
// CPU reference of cuda/sliding_window.cu. As the MLPerf reference:
//   for each window w (in window_origins order):
//     result[:, win] += logits(w) * patch        (float32: the product rounded, then the sum)
//     norm[win]      += patch
//   labels = argmax_c(result[c] / norm)           (float32 division; first maximum wins)
// Float order: each voxel's sums are taken in window order (the order of `origins`, and across
// calls in call order), on the CPU and the CUDA twin alike, so the two are bit-identical. The
// reference keeps a 3-channel norm map whose channels hold the same values: one is kept here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mlperf_trt::kernels {

struct VolumeShape {
  size_t depth = 0, height = 0, width = 0;
  size_t voxels() const { return depth * height * width; }
};

// The reference's importance patch: a 1-D gaussian of `roi` points with std = sigma_scale * roi
// (scipy.signal.gaussian: exp(-n^2 / (2 std^2)), n = i - (roi-1)/2), the 3-D outer product
// (g[i]*g[j])*g[k], its cube root, divided by its maximum; all in double, then float32 [roi^3].
std::vector<float> gaussian_importance(size_t roi, double sigma_scale, size_t threads = 0);

// Window origins (z, y, x), z outermost: per axis 0, stride, ..., stride * ((dim - roi) / stride)
// (SPEC §2.3). A dimension below roi is a kData error (preprocessing pads volumes to >= 128).
std::vector<int64_t> window_origins(const VolumeShape& shape, size_t roi, size_t stride);

// kData error unless every origin (k rows of z, y, x) is >= 0 and its window fits the volume.
void check_origins(const int64_t* origins, size_t k, const VolumeShape& shape, size_t roi);

// windows[w] = volume[oz:oz+roi, oy:oy+roi, ox:ox+roi] for each origin; windows is [k, roi^3].
void extract_windows(const float* volume, const VolumeShape& shape, const int64_t* origins,
                     size_t k, size_t roi, float* windows, size_t threads = 0);

// logits [k, channels, roi^3] into result [channels, D, H, W] and norm [D, H, W] (see above).
// Threads split the volume's depth, so each voxel still sees the windows in order.
void accumulate_windows(const float* logits, size_t channels, const int64_t* origins, size_t k,
                        size_t roi, const float* patch, const VolumeShape& shape, float* result,
                        float* norm, size_t threads = 0);

// out[v] = argmax_c result[c, v] / norm[v] as uint8 (first maximum wins, NaN never wins; a voxel
// no window covered has 0 / 0 in every channel and gets label 0).
void finalize_argmax(const float* result, const float* norm, size_t channels,
                     const VolumeShape& shape, uint8_t* out, size_t threads = 0);

}  // namespace mlperf_trt::kernels
