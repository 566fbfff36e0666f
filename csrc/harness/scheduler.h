// Scheduler: LoadGen pushes (id, index) pairs; workers pull batches formed by the scenario's
// batching policy (DESIGN §4.1):
//   Offline      max_batch, no waiting (LoadGen issues the whole query at once)
//   Server       max_batch, or whatever is queued once the oldest sample waited timeout_us
//   SingleStream 1 (max_batch = 1)
//   MultiStream  the query's samples (max_batch = samples per query, no waiting)
// Workers pull, so a batch always goes to an idle worker group: the least loaded one.
//
// Two refinements for samples of different sizes, both driven by a per-sample cost (indexed by
// QSL index, given once at construction):
//   length buckets (bert, LLMs): samples are queued per bucket of cost (sequence length) and a
//     batch never mixes buckets, so it carries little padding;
//   a cost budget (dlrm-v2: user-item pairs): a batch holds at most max_cost, except that one
//     sample larger than the budget goes alone. A sample is never split across batches.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

namespace mlperf_trt {

struct BatchPolicy {
  size_t max_batch = 1;
  int64_t timeout_us = 0;  // 0: take what is queued at once
  uint64_t max_cost = 0;   // 0: no budget; else the most total cost a batch may carry
  // Ascending inclusive upper bounds of the cost buckets; empty: one bucket. A cost above the
  // last bound goes to the last bucket.
  std::vector<uint32_t> bucket_bounds;
};

struct Batch {
  std::vector<uint64_t> ids;      // LoadGen response ids, returned unchanged
  std::vector<uint64_t> indices;  // QSL sample indices
  std::vector<uint32_t> costs;    // per sample: its cost (1 without a cost table)
  uint64_t cost = 0;              // total cost of the samples (= size() without costs)
  uint32_t max_item_cost = 0;     // the largest sample cost (bert: the padded length needed)
  size_t size() const { return ids.size(); }
  void clear() {
    ids.clear();
    indices.clear();
    costs.clear();
    cost = 0;
    max_item_cost = 0;
  }
};

class Scheduler {
 public:
  using Clock = std::chrono::steady_clock;

  // `costs[i]` is the cost of QSL sample i; empty: every sample costs 1.
  explicit Scheduler(BatchPolicy policy, std::vector<uint32_t> costs = {});

  const BatchPolicy& policy() const { return policy_; }
  size_t buckets() const { return buckets_.size(); }

  // Called from LoadGen's issue thread; never blocks on workers.
  void push(const uint64_t* ids, const uint64_t* indices, size_t n);
  // LoadGen's FlushQueries: stop waiting for timeouts, hand out what is queued.
  void flush();
  // Stop handing out work: waiting workers return false once the queue is empty.
  void stop();
  // After a failure: no more waiting, batches are handed out at once (to be completed empty).
  void drain();

  // Blocks until a batch is ready under the policy; false when stopped and nothing is queued.
  bool next_batch(Batch& out);

  uint64_t pushed() const;
  uint64_t handed_out() const;
  size_t queued() const;

 private:
  struct Entry {
    uint64_t id;
    uint64_t index;
    uint32_t cost;
    Clock::time_point enqueued;
  };
  struct Bucket {
    std::deque<Entry> queue;
    uint64_t cost = 0;  // total cost queued
  };

  uint32_t cost_of(uint64_t index) const;
  size_t bucket_of(uint32_t cost) const;
  bool full(const Bucket& b) const;
  // The bucket to take a batch from now, or -1 when none is ready (then *deadline is the time
  // the oldest queued sample's timeout expires, if any is queued).
  long pick_locked(Clock::time_point now, Clock::time_point* deadline) const;

  BatchPolicy policy_;
  std::vector<uint32_t> costs_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Bucket> buckets_;
  size_t queued_ = 0;
  bool stopped_ = false;
  bool no_wait_ = false;  // set by flush() and drain()
  uint64_t pushed_ = 0;
  uint64_t handed_out_ = 0;
};

}  // namespace mlperf_trt
