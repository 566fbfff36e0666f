// parallel_for: split [0, n) into contiguous chunks over `threads` std::threads (0: hardware
// concurrency; the calling thread takes the first chunk). The first exception of the lowest chunk
// is rethrown after every thread joined, so errors do not depend on thread timing.
#pragma once

#include <algorithm>
#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

namespace mlperf_trt::kernels {

inline size_t resolve_threads(size_t threads) {
  return threads ? threads : std::max(1u, std::thread::hardware_concurrency());
}

// fn(begin, end) for disjoint chunks; chunks of at least `grain` items.
template <typename Fn>
void parallel_for(size_t n, size_t threads, size_t grain, Fn fn) {
  if (n == 0) return;
  grain = std::max<size_t>(grain, 1);
  const size_t chunks = std::min(resolve_threads(threads), (n + grain - 1) / grain);
  if (chunks <= 1) {
    fn(size_t{0}, n);
    return;
  }
  std::vector<std::exception_ptr> errors(chunks);
  const auto run = [&](size_t c) {
    try {
      fn(n * c / chunks, n * (c + 1) / chunks);
    } catch (...) {
      errors[c] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(chunks - 1);
  for (size_t c = 1; c < chunks; ++c) pool.emplace_back(run, c);
  run(0);
  for (std::thread& t : pool) t.join();
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace mlperf_trt::kernels
