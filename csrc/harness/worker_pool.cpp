#include "harness/worker_pool.h"

#include <algorithm>

#include "common/check.h"

namespace mlperf_trt {

WorkerPool::WorkerPool(std::shared_ptr<Scheduler> scheduler,
                       std::shared_ptr<const SampleStore> store, std::vector<WorkerSpec> workers,
                       std::shared_ptr<Postprocessor> postprocessor,
                       std::shared_ptr<ResponseSink> sink)
    : scheduler_(std::move(scheduler)),
      store_(std::move(store)),
      workers_(std::move(workers)),
      postprocessor_(std::move(postprocessor)),
      sink_(std::move(sink)) {
  MLPERF_CHECK_CONFIG(scheduler_ && postprocessor_ && sink_,
                      "WorkerPool needs a scheduler, a post-processor and a response sink");
  MLPERF_CHECK_CONFIG(!workers_.empty(), "WorkerPool needs at least one worker");
  int groups = 0;
  for (const auto& w : workers_) {
    MLPERF_CHECK_CONFIG(w.executor, "every worker needs an executor");
    MLPERF_CHECK_CONFIG(w.group >= 0, "worker group must be >= 0, got " << w.group);
    groups = std::max(groups, w.group + 1);
  }
  for (int g = 0; g < groups; ++g) group_batches_.push_back(std::make_unique<std::atomic<uint64_t>>(0));
}

WorkerPool::~WorkerPool() { stop(); }

void WorkerPool::start() {
  MLPERF_CHECK_HARNESS(!started_, "WorkerPool.start() called twice");
  started_ = true;
  for (size_t i = 0; i < workers_.size(); ++i) threads_.emplace_back([this, i] { loop(i); });
}

void WorkerPool::stop() {
  scheduler_->stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

std::exception_ptr WorkerPool::error() const {
  std::lock_guard<std::mutex> lock(error_mutex_);
  return error_;
}

std::vector<uint64_t> WorkerPool::batches_per_group() const {
  std::vector<uint64_t> out;
  for (const auto& c : group_batches_) out.push_back(c->load());
  return out;
}

void WorkerPool::record_failure(std::exception_ptr error) {
  {
    std::lock_guard<std::mutex> lock(error_mutex_);
    if (!error_) error_ = error;
  }
  failed_.store(true);
  scheduler_->drain();
}

void WorkerPool::complete_empty(const Batch& batch, Responses& responses) {
  responses.reset(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) responses.add(0, 0);
  try {
    sink_->complete(batch, responses);
  } catch (...) {
    record_failure(std::current_exception());
  }
}

void WorkerPool::loop(size_t worker) {
  WorkerSpec& spec = workers_[worker];
  Batch batch;
  Responses responses;
  const size_t max_batch = scheduler_->policy().max_batch;
  // Pooled input buffers: one per input tensor, sized for the largest batch.
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<TensorView> inputs;
  if (store_) {
    for (const auto& t : store_->tensors()) {
      buffers.emplace_back(max_batch * t.sample_bytes());
      TensorView view;
      view.dtype = t.dtype;
      view.shape.push_back(0);
      view.shape.insert(view.shape.end(), t.sample_shape.begin(), t.sample_shape.end());
      inputs.push_back(view);
    }
  }
  while (scheduler_->next_batch(batch)) {
    const size_t n = batch.size();
    if (failed_.load()) {
      complete_empty(batch, responses);
      completed_ += n;
      continue;
    }
    try {
      for (size_t t = 0; t < inputs.size(); ++t) {
        store_->gather(batch.indices.data(), n, t, buffers[t].data());
        inputs[t].data = buffers[t].data();
        inputs[t].shape[0] = static_cast<int64_t>(n);
      }
      std::vector<TensorView> outputs = spec.executor->run(inputs, n);
      postprocessor_->process(batch, outputs, responses);
      MLPERF_CHECK_HARNESS(responses.size() == n, "the post-processor produced "
                                                      << responses.size()
                                                      << " responses for a batch of " << n);
      sink_->complete(batch, responses);
      ++batches_;
      ++(*group_batches_[static_cast<size_t>(spec.group)]);
    } catch (...) {
      record_failure(std::current_exception());
      complete_empty(batch, responses);
    }
    completed_ += n;
  }
}

}  // namespace mlperf_trt
