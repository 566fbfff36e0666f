#include "kernels/cpu/sliding_window.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/check.h"
#include "kernels/cpu/detection_math.h"
#include "kernels/cpu/parallel.h"

namespace mlperf_trt::kernels {

std::vector<float> gaussian_importance(size_t roi, double sigma_scale, size_t threads) {
  MLPERF_CHECK_KERNEL(roi > 0 && roi <= 1024, "gaussian_importance: roi must be in [1, 1024], got "
                                                  << roi);
  MLPERF_CHECK_KERNEL(sigma_scale > 0.0 && std::isfinite(sigma_scale),
                      "gaussian_importance: sigma_scale must be finite and > 0, got "
                          << sigma_scale);
  const double std_dev = sigma_scale * static_cast<double>(roi);
  const double sig2 = 2.0 * std_dev * std_dev;
  std::vector<double> g(roi);
  for (size_t i = 0; i < roi; ++i) {
    const double n = static_cast<double>(i) - (static_cast<double>(roi) - 1.0) / 2.0;
    g[i] = std::exp(-(n * n) / sig2);
  }
  // The maximum of the cube root is at the centre, cbrt(g_c^3) with g_c the largest g.
  const double g_max = *std::max_element(g.begin(), g.end());
  const double peak = std::cbrt(g_max * g_max * g_max);
  std::vector<float> patch(roi * roi * roi);
  parallel_for(roi, threads, 8, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      for (size_t j = 0; j < roi; ++j) {
        const double gij = g[i] * g[j];
        float* row = patch.data() + (i * roi + j) * roi;
        for (size_t k = 0; k < roi; ++k) {
          row[k] = static_cast<float>(std::cbrt(gij * g[k]) / peak);
        }
      }
    }
  });
  return patch;
}

std::vector<int64_t> window_origins(const VolumeShape& shape, size_t roi, size_t stride) {
  MLPERF_CHECK_KERNEL(roi > 0 && stride > 0,
                      "window_origins: roi and stride must be > 0, got " << roi << ", " << stride);
  const size_t dims[3] = {shape.depth, shape.height, shape.width};
  const char* names[3] = {"depth", "height", "width"};
  std::vector<int64_t> axis[3];
  for (int a = 0; a < 3; ++a) {
    MLPERF_CHECK_DATA(dims[a] >= roi, "window_origins: volume "
                                          << names[a] << " " << dims[a] << " is below the window "
                                          << roi << "; preprocessing pads every axis to at least "
                                          << roi << " (SPEC §2.3)");
    for (size_t o = 0; o + roi <= dims[a]; o += stride) axis[a].push_back(static_cast<int64_t>(o));
  }
  std::vector<int64_t> origins;
  origins.reserve(axis[0].size() * axis[1].size() * axis[2].size() * 3);
  for (int64_t z : axis[0]) {
    for (int64_t y : axis[1]) {
      for (int64_t x : axis[2]) origins.insert(origins.end(), {z, y, x});
    }
  }
  return origins;
}

void check_origins(const int64_t* origins, size_t k, const VolumeShape& shape, size_t roi) {
  const size_t dims[3] = {shape.depth, shape.height, shape.width};
  for (size_t w = 0; w < k; ++w) {
    for (int a = 0; a < 3; ++a) {
      const int64_t o = origins[w * 3 + a];
      MLPERF_CHECK_DATA(o >= 0 && static_cast<size_t>(o) + roi <= dims[a],
                        "window " << w << ": origin (" << origins[w * 3] << ", "
                                  << origins[w * 3 + 1] << ", " << origins[w * 3 + 2]
                                  << ") puts a " << roi << "^3 window outside the volume "
                                  << shape.depth << "x" << shape.height << "x" << shape.width);
    }
  }
}

void extract_windows(const float* volume, const VolumeShape& shape, const int64_t* origins,
                     size_t k, size_t roi, float* windows, size_t threads) {
  check_origins(origins, k, shape, roi);
  const size_t planes = k * roi;  // (window, z) pairs, each roi rows of roi floats
  parallel_for(planes, threads, 16, [&](size_t begin, size_t end) {
    for (size_t p = begin; p < end; ++p) {
      const size_t w = p / roi, z = p % roi;
      const auto oz = static_cast<size_t>(origins[w * 3]);
      const auto oy = static_cast<size_t>(origins[w * 3 + 1]);
      const auto ox = static_cast<size_t>(origins[w * 3 + 2]);
      float* dst = windows + p * roi * roi;
      const float* src = volume + ((oz + z) * shape.height + oy) * shape.width + ox;
      for (size_t y = 0; y < roi; ++y) {
        std::memcpy(dst + y * roi, src + y * shape.width, roi * sizeof(float));
      }
    }
  });
}

void accumulate_windows(const float* logits, size_t channels, const int64_t* origins, size_t k,
                        size_t roi, const float* patch, const VolumeShape& shape, float* result,
                        float* norm, size_t threads) {
  MLPERF_CHECK_KERNEL(channels > 0, "accumulate_windows: zero channels");
  check_origins(origins, k, shape, roi);
  const size_t window = roi * roi * roi;
  const size_t voxels = shape.voxels();
  // Each thread owns a range of the volume's depth and walks every window in order.
  parallel_for(shape.depth, threads, 4, [&](size_t z_begin, size_t z_end) {
    for (size_t w = 0; w < k; ++w) {
      const auto oz = static_cast<size_t>(origins[w * 3]);
      const auto oy = static_cast<size_t>(origins[w * 3 + 1]);
      const auto ox = static_cast<size_t>(origins[w * 3 + 2]);
      const size_t lo = std::max(z_begin, oz), hi = std::min(z_end, oz + roi);
      const float* win_logits = logits + w * channels * window;
      for (size_t z = lo; z < hi; ++z) {
        for (size_t y = 0; y < roi; ++y) {
          const size_t local = ((z - oz) * roi + y) * roi;
          const size_t global = (z * shape.height + oy + y) * shape.width + ox;
          const float* p = patch + local;
          for (size_t c = 0; c < channels; ++c) {
            const float* l = win_logits + c * window + local;
            float* r = result + c * voxels + global;
            for (size_t x = 0; x < roi; ++x) r[x] = detection::accumulate(r[x], l[x], p[x]);
          }
          float* n = norm + global;
          for (size_t x = 0; x < roi; ++x) n[x] = detection::fadd(n[x], p[x]);
        }
      }
    }
  });
}

void finalize_argmax(const float* result, const float* norm, size_t channels,
                     const VolumeShape& shape, uint8_t* out, size_t threads) {
  MLPERF_CHECK_KERNEL(channels > 0 && channels <= 256,
                      "finalize_argmax: channels must be in [1, 256], got " << channels);
  const size_t voxels = shape.voxels();
  if (channels == 3) {  // KiTS19's background, kidney, tumour: a branch-free, vectorisable loop
    parallel_for(voxels, threads, 1 << 16, [&](size_t begin, size_t end) {
      const float* r0 = result;
      const float* r1 = result + voxels;
      const float* r2 = result + 2 * voxels;
      for (size_t v = begin; v < end; ++v) {
        const float a = detection::fdiv(r0[v], norm[v]);
        const float b = detection::fdiv(r1[v], norm[v]);
        const float c = detection::fdiv(r2[v], norm[v]);
        const bool take_b = b > a || (a != a && b == b);
        const float ab = take_b ? b : a;
        const bool take_c = c > ab || (ab != ab && c == c);
        out[v] = static_cast<uint8_t>(take_c ? 2 : (take_b ? 1 : 0));
      }
    });
    return;
  }
  parallel_for(voxels, threads, 1 << 16, [&](size_t begin, size_t end) {
    for (size_t v = begin; v < end; ++v) {
      const float n = norm[v];
      size_t best = 0;
      float best_value = detection::fdiv(result[v], n);
      for (size_t c = 1; c < channels; ++c) {
        const float value = detection::fdiv(result[c * voxels + v], n);
        // As argmax_rows: a strict > keeps the first maximum; NaN never wins.
        if (value > best_value || (best_value != best_value && value == value)) {
          best_value = value;
          best = c;
        }
      }
      out[v] = static_cast<uint8_t>(best);
    }
  });
}

}  // namespace mlperf_trt::kernels
