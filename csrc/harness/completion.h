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
  std::vector<uint8_t> payload;   // every sample's payload, back to back
  std::vector<size_t> offsets;    // size()+1 offsets into payload
  std::vector<int64_t> n_tokens;  // token benchmarks only (SPEC §3.5), else empty
  bool first_token = false;       // send FirstTokenComplete (4-byte first token) before completion

  size_t size() const { return offsets.empty() ? 0 : offsets.size() - 1; }
  void reset(size_t n) {
    payload.clear();
    offsets.assign(1, 0);
    offsets.reserve(n + 1);
    n_tokens.clear();
    first_token = false;
  }
  // Appends one sample's payload; returns where to write its bytes.
  uint8_t* append(size_t bytes) {
    const size_t start = payload.size();
    payload.resize(start + bytes);
    offsets.push_back(start + bytes);
    return payload.data() + start;
  }
};

class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  // Completes every sample of `batch` with its response; must not return before LoadGen has.
  virtual void complete(const Batch& batch, const Responses& responses) = 0;
};

}  // namespace mlperf_trt
