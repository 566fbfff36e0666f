// One error macro family for the C++ core (DESIGN §4, STYLE "one error-macro header").
// Errors carry a domain; csrc/bindings maps each domain onto a class of mlperf_trt.errors.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace mlperf_trt {

enum class ErrorDomain { kConfig, kData, kHarness, kKernel, kBackend };

class Error : public std::runtime_error {
 public:
  Error(ErrorDomain domain, const std::string& message)
      : std::runtime_error(message), domain_(domain) {}
  ErrorDomain domain() const { return domain_; }

 private:
  ErrorDomain domain_;
};

namespace detail {
[[noreturn]] inline void throw_error(ErrorDomain domain, const char* file, int line,
                                     const std::string& message) {
  // Keep the location short: the path below csrc/, not the build machine's absolute path.
  const std::string path(file);
  const size_t at = path.rfind("csrc/");
  std::ostringstream out;
  out << message << " [" << (at == std::string::npos ? path : path.substr(at)) << ":" << line
      << "]";
  throw Error(domain, out.str());
}
}  // namespace detail

}  // namespace mlperf_trt

// MLPERF_CHECK(cond, domain, "message " << value): throws mlperf_trt::Error(domain) when cond is false.
#define MLPERF_CHECK(cond, domain, msg)                                                  \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::ostringstream mlperf_check_stream_;                                           \
      mlperf_check_stream_ << msg;                                                       \
      ::mlperf_trt::detail::throw_error(::mlperf_trt::ErrorDomain::domain, __FILE__,     \
                                        __LINE__, mlperf_check_stream_.str());           \
    }                                                                                    \
  } while (0)

#define MLPERF_CHECK_HARNESS(cond, msg) MLPERF_CHECK(cond, kHarness, msg)
#define MLPERF_CHECK_KERNEL(cond, msg) MLPERF_CHECK(cond, kKernel, msg)
#define MLPERF_CHECK_DATA(cond, msg) MLPERF_CHECK(cond, kData, msg)
#define MLPERF_CHECK_CONFIG(cond, msg) MLPERF_CHECK(cond, kConfig, msg)
#define MLPERF_CHECK_BACKEND(cond, msg) MLPERF_CHECK(cond, kBackend, msg)

// CUDA runtime calls: only compiled into _cuda (the header is harmless elsewhere).
#define MLPERF_CUDA_CHECK(expr)                                                          \
  do {                                                                                   \
    cudaError_t mlperf_cuda_status_ = (expr);                                            \
    MLPERF_CHECK(mlperf_cuda_status_ == cudaSuccess, kBackend,                           \
                 "CUDA call " #expr " failed: " << cudaGetErrorName(mlperf_cuda_status_) \
                                                << ": "                                  \
                                                << cudaGetErrorString(mlperf_cuda_status_)); \
  } while (0)
