// Argument-check helpers shared by the ops' checks (ops/<op>.h). Each raises
// ValueError (TORCH_CHECK_VALUE) with a message "<op>: <name> ...": the Python
// twins raise the same texts, so the wording must not change.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <limits>
#include <string>

namespace unlearn {

// The most rows the rank-based ops take: n^2 fits in int64, so every per-row
// term (n * R_i, L_i^2, ...) and every sum over rows of ranks (up to n^2) is an
// exact int64. Sums that reach n^3 are accumulated in 128 bits
// (common/exact_sum.h).
inline constexpr int64_t kMaxRankRows = 3037000499;  // floor(sqrt(2^63 - 1))

// The dtypes the kernels compute in.
bool is_float32_or_64(const at::Tensor& t);

// t is float32 or float64.
void check_float(const char* op, const char* name, const at::Tensor& t);

// Every value of t is finite (true of an empty t).
void check_finite(const char* op, const char* name, const at::Tensor& t);

// A scalar argument is finite and >= 0.
void check_finite_nonnegative(const char* op, const char* name, double value);

// A float32/float64 matrix of shape (n, d) with 2 <= n <= max_rows, d >= 1 and
// finite values.
void check_points(const char* op, const char* name, const at::Tensor& x,
                  int64_t max_rows = std::numeric_limits<int64_t>::max());

// A float32/float64 vector of length n with finite, not all equal values.
void check_response(const char* op, const char* name, const at::Tensor& y, int64_t n);

// `other` is on the device of `ref`.
void check_same_device(const char* op, const char* name, const at::Tensor& other, const char* ref_name,
                       const at::Tensor& ref);

// A tensor the kernel writes into has no two elements at one address (an
// expanded view): every dimension of size > 1 has a nonzero stride.
void check_no_overlap(const char* op, const char* name, const at::Tensor& t);

// The machine's physical memory in bytes (the CPU kernels' limit on a new
// tensor), or the largest int64 where the system does not say.
int64_t physical_memory_bytes();

// A double as Python's repr() writes it (the shortest digits that read back
// to it; "1e-05", "0.0001", "1.0", "inf"), so that a number in a message has
// the same text as in the twin's f-string.
std::string python_repr(double value);

// The decimal digits of a 128-bit integer (for messages about exact sums).
std::string to_string(__int128 value);

// `other` has the dtype, device and row count of `ref`.
void check_same_rows(const char* op, const char* name, const at::Tensor& other, const char* ref_name,
                     const at::Tensor& ref);

}  // namespace unlearn
