#include "ops/checks.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

namespace unlearn {

bool is_float32_or_64(const at::Tensor& t) { return t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble; }

void check_float(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK_VALUE(is_float32_or_64(t), op, ": ", name, " must be float32 or float64, got ", t.scalar_type());
}

void check_finite(const char* op, const char* name, const at::Tensor& t) {
  // The extremes, in one pass and without a temporary as large as `t`: a NaN
  // propagates to both, and an infinity is one of them. The twins' all_finite.
  bool finite = true;
  if (t.numel() > 0) {
    const auto [low, high] = at::aminmax(t);
    finite = at::isfinite(at::stack({low, high})).all().item<bool>();
  }
  TORCH_CHECK_VALUE(finite, op, ": ", name, " contains NaN or infinite values");
}

void check_finite_nonnegative(const char* op, const char* name, double value) {
  TORCH_CHECK_VALUE(std::isfinite(value) && value >= 0, op, ": ", name, " must be finite and >= 0, got ",
                    python_repr(value));
}

void check_points(const char* op, const char* name, const at::Tensor& x, int64_t max_rows) {
  TORCH_CHECK_VALUE(x.dim() == 2, op, ": ", name, " must be a 2-D tensor of shape (n, d), got ", x.dim(),
                    " dimensions");
  check_float(op, name, x);
  TORCH_CHECK_VALUE(x.size(0) >= 2, op, ": ", name, " needs at least 2 rows, got ", x.size(0));
  TORCH_CHECK_VALUE(x.size(0) <= max_rows, op, ": ", name, " has ", x.size(0), " rows, more than the ", max_rows,
                    " whose rank sums are exact in int64");
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

void check_no_overlap(const char* op, const char* name, const at::Tensor& t) {
  for (int64_t d = 0; d < t.dim(); ++d) {
    TORCH_CHECK_VALUE(t.stride(d) != 0 || t.size(d) <= 1, op, ": ", name,
                      " is an expanded view (several elements share one address); pass a tensor with its own memory");
  }
}

int64_t physical_memory_bytes() {
  const int64_t pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGE_SIZE);
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (pages <= 0 || page_size <= 0 || pages > kMax / page_size) return kMax;
  return pages * page_size;
}

std::string python_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // Shortest round-trip digits in scientific form: "d[.ddd]e(+|-)xx".
  char buf[64];
  const auto end = std::to_chars(buf, buf + sizeof(buf), std::fabs(value), std::chars_format::scientific).ptr;
  const std::string sci(buf, end);
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exponent = std::atoi(sci.c_str() + e + 1);
  std::string out = std::signbit(value) ? "-" : "";
  const int point = exponent + 1;  // digits d1 d2 ... stand for 0.d1d2... * 10^point
  const int count = static_cast<int>(digits.size());
  if (point <= -4 || point > 16) {  // Python's repr switches to an exponent here
    out += digits.substr(0, 1);
    if (count > 1) out += "." + digits.substr(1);
    const int shown = std::abs(exponent);
    out += std::string(exponent < 0 ? "e-" : "e+") + (shown < 10 ? "0" : "") + std::to_string(shown);
  } else if (point <= 0) {
    out += "0." + std::string(-point, '0') + digits;
  } else if (point < count) {
    out += digits.substr(0, point) + "." + digits.substr(point);
  } else {
    out += digits + std::string(point - count, '0') + ".0";
  }
  return out;
}

std::string to_string(__int128 value) {
  const bool negative = value < 0;
  std::string digits;
  do {
    const int digit = static_cast<int>(value % 10);
    digits.push_back(static_cast<char>('0' + (negative ? -digit : digit)));
    value /= 10;
  } while (value != 0);
  if (negative) digits.push_back('-');
  std::reverse(digits.begin(), digits.end());
  return digits;
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
