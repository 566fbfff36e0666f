// Completion: the responses of one batch and the sink that hands them to LoadGen, once per batch
// (DESIGN §4.1). The payload bytes stay owned by Responses until ResponseSink::complete returns,
// which is what LoadGen requires of response buffers (SPEC §1.2, §7 pitfall 4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "harness/scheduler.h"

namespace mlperf_trt {

struct Responses {
  std::vector<uint8_t> payload;   // the payload bytes of the batch
  std::vector<size_t> offsets;    // per sample: where its bytes start in payload
  std::vector<size_t> sizes;      // per sample: how many bytes (0 = empty response)
  std::vector<int64_t> n_tokens;  // token benchmarks only (SPEC §3.5), else empty
  bool first_token = false;       // send FirstTokenComplete (4-byte first token) before completion

  size_t size() const { return sizes.size(); }
  void reset(size_t n) {
    payload.clear();
    offsets.clear();
    sizes.clear();
    offsets.reserve(n);
    sizes.reserve(n);
    n_tokens.clear();
    first_token = false;
  }
  // Appends one sample's payload of `bytes` bytes; returns where to write them. The pointer is
  // valid until the next append (payload may grow).
  uint8_t* append(size_t bytes) {
    const size_t start = payload.size();
    payload.resize(start + bytes);
    offsets.push_back(start);
    sizes.push_back(bytes);
    return payload.data() + start;
  }
  // Adds a sample whose bytes are already in payload (several samples may share them).
  void add(size_t offset, size_t bytes) {
    offsets.push_back(offset);
    sizes.push_back(bytes);
  }
};

class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  // Completes every sample of `batch` with its response; must not return before LoadGen has.
  virtual void complete(const Batch& batch, const Responses& responses) = 0;
};

}  // namespace mlperf_trt
