// The float arithmetic of the RetinaNet post-processing (SPEC §2.2) and of the sliding-window
// accumulation (SPEC §2.3), written once and compiled for the host (kernels/cpu) and the device
// (kernels/cuda), so that the CPU and CUDA twins compute the same bits:
//  - every operation is one IEEE round-to-nearest +, -, *, / : on the device through the
//    explicit __*_rn intrinsics (nvcc would otherwise fuse a*b+c into an FMA), on the host with
//    -ffp-contract=off on the files that use this header (CMakeLists.txt);
//  - exp is evaluated here in double from those operations only (Cody-Waite reduction and a
//    degree-13 Taylor polynomial, relative error < 4e-16) instead of taken from two different
//    libms, then rounded once to float: the result is the correctly rounded float exp except when
//    the exact value lies within ~1e-16 (relative) of a float rounding boundary.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define MLPERF_HD __host__ __device__ __forceinline__
#else
#define MLPERF_HD inline
#endif

namespace mlperf_trt::kernels::detection {

// --- round-to-nearest primitives, never contracted --------------------------------------------
MLPERF_HD double dmul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
MLPERF_HD double dadd(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
MLPERF_HD double ddiv(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
MLPERF_HD float fmul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
MLPERF_HD float fadd(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
MLPERF_HD float fsub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
MLPERF_HD float fdiv(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

MLPERF_HD uint32_t float_bits(float v) {
  uint32_t bits;
  memcpy(&bits, &v, sizeof bits);
  return bits;
}

// exp(x) in double from +, -, *, / only (see the file comment). Saturates to 0 / +inf outside
// [-708, 708]; NaN in, NaN out.
MLPERF_HD double exp_f64(double x) {
  if (!(x == x)) return x;
  if (x > 708.0) {
    const uint64_t inf_bits = 0x7FF0000000000000ull;
    double inf;
    memcpy(&inf, &inf_bits, sizeof inf);
    return inf;
  }
  if (x < -708.0) return 0.0;
  // Cody-Waite: x = k ln2 + r, |r| <= ln2/2; ln2_hi has trailing zero bits so k * ln2_hi is exact.
  const double kInvLn2 = 1.44269504088896338700e+00;
  const double kLn2Hi = 6.93147180369123816490e-01;
  const double kLn2Lo = 1.90821492927058770002e-10;
#if defined(__CUDA_ARCH__)
  const double k = floor(dadd(dmul(x, kInvLn2), 0.5));
#else
  const double k = std::floor(dadd(dmul(x, kInvLn2), 0.5));
#endif
  const double r = dadd(dadd(x, -dmul(k, kLn2Hi)), -dmul(k, kLn2Lo));
  // Taylor series of exp(r) to r^13 / 13! (the next term is < 4.3e-18 for |r| <= 0.347).
  const double c[14] = {1.0,
                        1.0,
                        1.0 / 2,
                        1.0 / 6,
                        1.0 / 24,
                        1.0 / 120,
                        1.0 / 720,
                        1.0 / 5040,
                        1.0 / 40320,
                        1.0 / 362880,
                        1.0 / 3628800,
                        1.0 / 39916800,
                        1.0 / 479001600,
                        1.0 / 6227020800.0};
  double p = c[13];
  for (int i = 12; i >= 0; --i) p = dadd(dmul(p, r), c[i]);
  // Scale by 2^k in two steps so that k down to -1022 - 52 stays representable.
  const int ki = static_cast<int>(k);
  const int k1 = ki / 2, k2 = ki - k1;
  const uint64_t b1 = static_cast<uint64_t>(k1 + 1023) << 52;
  const uint64_t b2 = static_cast<uint64_t>(k2 + 1023) << 52;
  double s1, s2;
  memcpy(&s1, &b1, sizeof s1);
  memcpy(&s2, &b2, sizeof s2);
  return dmul(dmul(p, s1), s2);
}

// --- RetinaNet (SPEC §2.2) ---------------------------------------------------------------------
// sigmoid(x) = 1 / (1 + exp(-x)) in double, rounded once to float.
MLPERF_HD float sigmoid_score(float logit) {
  const double e = exp_f64(-static_cast<double>(logit));
  return static_cast<float>(ddiv(1.0, dadd(1.0, e)));
}

// Ordering key of a candidate: larger is better. A score above the threshold is a positive
// float, whose bits order like the value; ties go to the lower index.
MLPERF_HD uint64_t candidate_key(float score, uint32_t index) {
  return (static_cast<uint64_t>(float_bits(score)) << 32) | (0xFFFFFFFFu - index);
}
MLPERF_HD uint32_t key_index(uint64_t key) {
  return 0xFFFFFFFFu - static_cast<uint32_t>(key & 0xFFFFFFFFu);
}

struct Box {
  float x1, y1, x2, y2;
};

// torchvision BoxCoder.decode_single with weights (1, 1, 1, 1) (division by 1 is exact, so it is
// left out), dw and dh clamped above at log(1000 / 16) as a float32 scalar, then
// clip_boxes_to_image to [0, size] on both axes. Each line is one float32 operation, in
// torchvision's order.
MLPERF_HD Box decode_box(const float* anchor, const float* delta, float size) {
  const float clip = 4.135166556742356f;  // float32(log(1000 / 16))
  const float w = fsub(anchor[2], anchor[0]);
  const float h = fsub(anchor[3], anchor[1]);
  const float cx = fadd(anchor[0], fmul(0.5f, w));
  const float cy = fadd(anchor[1], fmul(0.5f, h));
  const float dw = delta[2] > clip ? clip : delta[2];  // torch.clamp(max=): NaN stays NaN
  const float dh = delta[3] > clip ? clip : delta[3];
  const float pcx = fadd(fmul(delta[0], w), cx);
  const float pcy = fadd(fmul(delta[1], h), cy);
  const float pw = fmul(static_cast<float>(exp_f64(dw)), w);
  const float ph = fmul(static_cast<float>(exp_f64(dh)), h);
  const float hw = fmul(0.5f, pw), hh = fmul(0.5f, ph);
  float v[4] = {fsub(pcx, hw), fsub(pcy, hh), fadd(pcx, hw), fadd(pcy, hh)};
  for (float& c : v) {
    c = c < 0.0f ? 0.0f : c;
    c = c > size ? size : c;
  }
  return Box{v[0], v[1], v[2], v[3]};
}

// torchvision's NMS test for a later box b against a kept box a: areas (x2-x1)*(y2-y1) (no +1),
// inter = max(0, xx2-xx1) * max(0, yy2-yy1), iou = inter / (area_a + area_b - inter), compared
// with the threshold in double (torchvision passes it as a double).
MLPERF_HD bool iou_above(const Box& a, const Box& b, double threshold) {
  const float area_a = fmul(fsub(a.x2, a.x1), fsub(a.y2, a.y1));
  const float area_b = fmul(fsub(b.x2, b.x1), fsub(b.y2, b.y1));
  const float xx1 = a.x1 > b.x1 ? a.x1 : b.x1;
  const float yy1 = a.y1 > b.y1 ? a.y1 : b.y1;
  const float xx2 = a.x2 < b.x2 ? a.x2 : b.x2;
  const float yy2 = a.y2 < b.y2 ? a.y2 : b.y2;
  const float dw = fsub(xx2, xx1), dh = fsub(yy2, yy1);
  const float iw = dw > 0.0f ? dw : 0.0f;
  const float ih = dh > 0.0f ? dh : 0.0f;
  const float inter = fmul(iw, ih);
  const float iou = fdiv(inter, fsub(fadd(area_a, area_b), inter));
  return static_cast<double>(iou) > threshold;
}

// --- sliding window (SPEC §2.3) ----------------------------------------------------------------
// result += logit * patch as the reference's `result_slice += logits * norm_patch`: the product
// rounded to float, then the sum.
MLPERF_HD float accumulate(float result, float logit, float patch) {
  return fadd(result, fmul(logit, patch));
}

}  // namespace mlperf_trt::kernels::detection
