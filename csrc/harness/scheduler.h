// Scheduler: LoadGen pushes (id, index) pairs; workers pull batches formed by the scenario's
// batching policy (DESIGN §4.1):
//   Offline      max_batch, no waiting (LoadGen issues the whole query at once)
//   Server       max_batch, or whatever is queued once the oldest sample waited timeout_us
//   SingleStream 1 (max_batch = 1)
//   MultiStream  the query's samples (max_batch = samples per query, no waiting)
// Workers pull, so a batch always goes to an idle worker group: the least loaded one.
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
};

struct Batch {
  std::vector<uint64_t> ids;      // LoadGen response ids, returned unchanged
  std::vector<uint64_t> indices;  // QSL sample indices
  size_t size() const { return ids.size(); }
  void clear() {
    ids.clear();
    indices.clear();
  }
};

class Scheduler {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Scheduler(BatchPolicy policy);

  const BatchPolicy& policy() const { return policy_; }

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
  bool ready_locked(Clock::time_point now, Clock::time_point* deadline) const;

  BatchPolicy policy_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  struct Entry {
    uint64_t id;
    uint64_t index;
    Clock::time_point enqueued;
  };
  std::deque<Entry> queue_;
  bool stopped_ = false;
  bool no_wait_ = false;  // set by flush() and drain()
  uint64_t pushed_ = 0;
  uint64_t handed_out_ = 0;
};

}  // namespace mlperf_trt
