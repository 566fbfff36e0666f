// WorkerPool: worker threads, grouped per device (GPU, or CPU group on a CPU machine), each owning
// one executor. A worker loops: next_batch (no GIL) -> gather (C++ memcpy) -> executor.run ->
// post-process (C++) -> complete (once per batch). DESIGN §4.1.
//
// Failure: the first error stops real work; every sample handed out afterwards is completed
// with an empty response so that LoadGen can return, and the error is re-raised to the caller.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness/completion.h"
#include "harness/executor.h"
#include "harness/postprocessor.h"
#include "harness/sample_store.h"
#include "harness/scheduler.h"

namespace mlperf_trt {

struct WorkerSpec {
  std::shared_ptr<Executor> executor;
  int group = 0;  // device / worker group this worker belongs to
};

class WorkerPool {
 public:
  WorkerPool(std::shared_ptr<Scheduler> scheduler, std::shared_ptr<const SampleStore> store,
             std::vector<WorkerSpec> workers, std::shared_ptr<Postprocessor> postprocessor,
             std::shared_ptr<ResponseSink> sink);
  ~WorkerPool();

  void start();
  // Stops the scheduler and joins every worker. Safe to call twice.
  void stop();

  bool failed() const { return failed_.load(); }
  std::exception_ptr error() const;
  uint64_t completed_samples() const { return completed_.load(); }
  uint64_t batches() const { return batches_.load(); }
  std::vector<uint64_t> batches_per_group() const;

 private:
  void loop(size_t worker);
  void record_failure(std::exception_ptr error);
  void complete_empty(const Batch& batch, Responses& responses);

  std::shared_ptr<Scheduler> scheduler_;
  std::shared_ptr<const SampleStore> store_;
  std::vector<WorkerSpec> workers_;
  std::shared_ptr<Postprocessor> postprocessor_;
  std::shared_ptr<ResponseSink> sink_;
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<std::atomic<uint64_t>>> group_batches_;
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> completed_{0};
  std::atomic<uint64_t> batches_{0};
  mutable std::mutex error_mutex_;
  std::exception_ptr error_;
  bool started_ = false;
};

}  // namespace mlperf_trt
