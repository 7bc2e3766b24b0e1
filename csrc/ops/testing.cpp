// Hooks for the tests, in their own namespace torch.ops.unlearn_testing: the
// exact accumulator of the CODEC sums (common/exact_sum.h) on crafted int64
// tensors, whose sums pass int64 without a tensor of millions of rows.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <tuple>

#include "common/exact_sum.h"

namespace unlearn {
namespace {

// (high 64 bits, low 64 bits as a signed int64, the sum rounded to float64)
// of exact_sum(t, chunk).
std::tuple<int64_t, int64_t, double> exact_sum_parts(const at::Tensor& t, int64_t chunk) {
  const __int128 total = exact_sum(t, chunk);
  return {static_cast<int64_t>(total >> 64), static_cast<int64_t>(static_cast<uint64_t>(total)),
          static_cast<double>(total)};
}

}  // namespace

TORCH_LIBRARY(unlearn_testing, m) { m.def("exact_sum(Tensor t, int chunk) -> (int, int, float)", &exact_sum_parts); }

}  // namespace unlearn
