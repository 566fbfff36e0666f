#include "kernels/cpu/embedding_bag.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <thread>

#include "common/check.h"

namespace mlperf_trt::kernels {
namespace {

// Pairs per work item: 64 pairs x a DLRM bag (up to 100 ids x 512 B) is enough work to amortise
// taking an item, and 2048 pairs x 26 tables still gives hundreds of items to balance threads.
constexpr size_t kPairsPerItem = 64;
constexpr size_t kAhead = 8;           // ids prefetched ahead (8 x 512 B rows for dim 128)
constexpr size_t kFloatsPerLine = 16;  // one 64-byte cache line

void check_layout(const EmbeddingBag& bag) {
  MLPERF_CHECK_KERNEL(bag.dim > 0, "embedding table " << bag.table_index << " has dim 0");
  MLPERF_CHECK_KERNEL(bag.out_stride >= bag.dim, "embedding table "
                                                     << bag.table_index << ": output row stride "
                                                     << bag.out_stride << " < dim " << bag.dim);
  MLPERF_CHECK_KERNEL(bag.hot <= 1 || bag.ids_stride >= bag.hot,
                      "embedding table " << bag.table_index << ": id row stride " << bag.ids_stride
                                         << " < multi-hot width " << bag.hot);
}

}  // namespace

void check_embedding_ids(const EmbeddingBag& bag, size_t begin, size_t end, bool skip_padding) {
  for (size_t p = begin; p < end; ++p) {
    const int32_t* ids = bag.ids + p * bag.ids_stride;
    for (size_t h = 0; h < bag.hot; ++h) {
      const int32_t id = ids[h];
      if (id >= 0 && static_cast<size_t>(id) < bag.rows) continue;
      if (skip_padding && id == -1) continue;
      MLPERF_CHECK_DATA(false, "embedding table " << bag.table_index << ": pair " << p << " (slot "
                                                  << h << ") has id " << id
                                                  << " out of range for the table's " << bag.rows
                                                  << " rows; ids must be in [0, " << bag.rows << ")"
                                                  << (skip_padding ? " or -1 (padding)" : ""));
    }
  }
}

void embedding_bag_sum(const EmbeddingBag& bag, size_t begin, size_t end, bool skip_padding) {
  check_layout(bag);
  check_embedding_ids(bag, begin, end, skip_padding);
  const size_t dim = bag.dim;
  const size_t hot = bag.hot;
  // Rows are random reads from tables far larger than the caches: prefetching the row kAhead
  // ids further on (across pairs) keeps several DRAM reads in flight instead of one.
  const size_t last = end * hot;
  const auto prefetch = [&](size_t k) {
    if (k >= last) return;
    const int32_t id = bag.ids[(k / hot) * bag.ids_stride + k % hot];
    if (id < 0) return;
    const float* row = bag.table + static_cast<size_t>(id) * dim;
    for (size_t d = 0; d < dim; d += kFloatsPerLine) __builtin_prefetch(row + d);
  };
  for (size_t k = begin * hot; k < begin * hot + kAhead; ++k) prefetch(k);
  for (size_t p = begin; p < end; ++p) {
    const int32_t* ids = bag.ids + p * bag.ids_stride;
    float* out = bag.out + p * bag.out_stride;
    std::fill(out, out + dim, 0.0f);
    for (size_t h = 0; h < hot; ++h) {
      prefetch(p * hot + h + kAhead);
      if (ids[h] < 0) continue;  // -1 padding (checked above)
      const float* row = bag.table + static_cast<size_t>(ids[h]) * dim;
      for (size_t d = 0; d < dim; ++d) out[d] += row[d];
    }
  }
}

void embedding_bag_sum_tables(const std::vector<EmbeddingBag>& bags, size_t pairs,
                              bool skip_padding, size_t threads) {
  for (const EmbeddingBag& bag : bags) check_layout(bag);
  if (pairs == 0 || bags.empty()) return;
  const size_t blocks = (pairs + kPairsPerItem - 1) / kPairsPerItem;
  const size_t items = blocks * bags.size();
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  threads = std::min(threads, items);

  std::vector<std::exception_ptr> errors(items);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  const auto work = [&] {
    for (size_t item = next++; item < items && !failed; item = next++) {
      const EmbeddingBag& bag = bags[item / blocks];
      const size_t begin = (item % blocks) * kPairsPerItem;
      const size_t end = std::min(pairs, begin + kPairsPerItem);
      try {
        embedding_bag_sum(bag, begin, end, skip_padding);
      } catch (...) {
        errors[item] = std::current_exception();
        failed = true;
      }
    }
  };
  if (threads <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    pool.reserve(threads - 1);
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (std::thread& t : pool) t.join();
  }
  if (failed) {
    // Items stop early once one failed, so the first failing item may not have run: check the
    // ids again in item order to report the lowest (table, pair) deterministically.
    for (const EmbeddingBag& bag : bags) check_embedding_ids(bag, 0, pairs, skip_padding);
    for (const std::exception_ptr& e : errors) {
      if (e) std::rethrow_exception(e);
    }
  }
}

}  // namespace mlperf_trt::kernels
