// Argument-check helpers shared by the ops' checks (ops/<op>.h). Each raises
// ValueError (TORCH_CHECK_VALUE) with a message "<op>: <name> ...": the Python
// twins raise the same texts, so the wording must not change.
#pragma once
#include <ATen/ATen.h>

namespace unlearn {

// The dtypes the kernels compute in.
bool is_float32_or_64(const at::Tensor& t);

// t is float32 or float64.
void check_float(const char* op, const char* name, const at::Tensor& t);

// Every value of t is finite (true of an empty t).
void check_finite(const char* op, const char* name, const at::Tensor& t);

// A scalar argument is finite and >= 0.
void check_finite_nonnegative(const char* op, const char* name, double value);

// A float32/float64 matrix of shape (n, d) with n >= 2, d >= 1 and finite values.
void check_points(const char* op, const char* name, const at::Tensor& x);

// A float32/float64 vector of length n with finite, not all equal values.
void check_response(const char* op, const char* name, const at::Tensor& y, int64_t n);

// `other` is on the device of `ref`.
void check_same_device(const char* op, const char* name, const at::Tensor& other, const char* ref_name,
                       const at::Tensor& ref);

// `other` has the dtype, device and row count of `ref`.
void check_same_rows(const char* op, const char* name, const at::Tensor& other, const char* ref_name,
                     const at::Tensor& ref);

}  // namespace unlearn
