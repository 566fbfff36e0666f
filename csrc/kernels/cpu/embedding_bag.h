// Embedding-bag with sum pooling over fixed-width multi-hot ids (DLRMv2, SPEC §2.8: 26 tables of
// dim 128, multi-hot widths 3, 2, 1, ... 214 ids per pair). CPU reference of
// cuda/embedding_bag.cu.
//   out[p, :] = sum_{h < hot} table[ids[p, h], :]     (float32, summed in order h = 0, 1, ...)
// Padding convention (opt-in, `skip_padding`): an id of -1 marks an empty slot and adds nothing,
// so ragged bags can be packed into a fixed width; a pair whose ids are all -1 gets zeros. Any
// other id outside [0, rows) is a kData error naming the table index, the pair, the id and the
// table's row count. Ids are checked before anything is written for that table and pair block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mlperf_trt::kernels {

// One table's share of a batch. Strides are in elements, so the 26 tables of a DLRM batch can
// read their ids as column slices of one [pairs, 214] id matrix and write one
// [pairs, 26, dim] output in place (out = base + t * dim, out_stride = 26 * dim).
struct EmbeddingBag {
  const float* table = nullptr;  // [rows, dim], rows packed (a numpy memmap is fine, never copied)
  size_t rows = 0;
  size_t dim = 0;
  const int32_t* ids = nullptr;  // pair p's ids at ids[p * ids_stride + h], h < hot
  size_t hot = 0;
  size_t ids_stride = 0;
  float* out = nullptr;  // pair p's sums at out[p * out_stride + d], d < dim
  size_t out_stride = 0;
  size_t table_index = 0;  // named in error messages
};

// Checks the ids of pairs [begin, end) (the error rule above).
void check_embedding_ids(const EmbeddingBag& bag, size_t begin, size_t end, bool skip_padding);

// Pairs [begin, end) of one table on the calling thread.
void embedding_bag_sum(const EmbeddingBag& bag, size_t begin, size_t end, bool skip_padding);

// Every table over `pairs` pairs, the (table, block of pairs) work items spread over `threads`
// std::threads (0: hardware concurrency). On bad ids the error of the lowest (table, pair) is
// thrown after all threads stopped, so the message does not depend on thread timing.
void embedding_bag_sum_tables(const std::vector<EmbeddingBag>& bags, size_t pairs,
                              bool skip_padding, size_t threads);

}  // namespace mlperf_trt::kernels
