#include "ops/checks.h"

#include <cmath>

namespace unlearn {

bool is_float32_or_64(const at::Tensor& t) { return t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble; }

void check_float(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK_VALUE(is_float32_or_64(t), op, ": ", name, " must be float32 or float64, got ", t.scalar_type());
}

void check_finite(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK_VALUE(at::isfinite(t).all().item<bool>(), op, ": ", name, " contains NaN or infinite values");
}

void check_finite_nonnegative(const char* op, const char* name, double value) {
  TORCH_CHECK_VALUE(std::isfinite(value) && value >= 0, op, ": ", name, " must be finite and >= 0, got ", value);
}

void check_points(const char* op, const char* name, const at::Tensor& x) {
  TORCH_CHECK_VALUE(x.dim() == 2, op, ": ", name, " must be a 2-D tensor of shape (n, d), got ", x.dim(),
                    " dimensions");
  check_float(op, name, x);
  TORCH_CHECK_VALUE(x.size(0) >= 2, op, ": ", name, " needs at least 2 rows, got ", x.size(0));
  TORCH_CHECK_VALUE(x.size(1) >= 1, op, ": ", name, " needs at least 1 column, got 0");
  check_finite(op, name, x);
}

void check_response(const char* op, const char* name, const at::Tensor& y, int64_t n) {
  TORCH_CHECK_VALUE(y.dim() == 1, op, ": ", name, " must be a 1-D tensor, got ", y.dim(), " dimensions");
  check_float(op, name, y);
  TORCH_CHECK_VALUE(y.size(0) == n, op, ": ", name, " has ", y.size(0), " values but the other inputs have ", n,
                    " rows");
  TORCH_CHECK_VALUE(n >= 2, op, ": ", name, " needs at least 2 values, got ", n);
  check_finite(op, name, y);
  TORCH_CHECK_VALUE((y.max() > y.min()).item<bool>(), op, ": ", name,
                    " is constant, so its dependence on anything is undefined");
}

void check_same_device(const char* op, const char* name, const at::Tensor& other, const char* ref_name,
                       const at::Tensor& ref) {
  TORCH_CHECK_VALUE(other.device() == ref.device(), op, ": ", name, " is on ", other.device(), " but ", ref_name,
                    " is on ", ref.device());
}

void check_same_rows(const char* op, const char* name, const at::Tensor& other, const char* ref_name,
                     const at::Tensor& ref) {
  TORCH_CHECK_VALUE(other.size(0) == ref.size(0), op, ": ", name, " has ", other.size(0), " rows but ", ref_name,
                    " has ", ref.size(0));
  TORCH_CHECK_VALUE(other.scalar_type() == ref.scalar_type(), op, ": ", name, " is ", other.scalar_type(), " but ",
                    ref_name, " is ", ref.scalar_type());
  check_same_device(op, name, other, ref_name, ref);
}

}  // namespace unlearn
