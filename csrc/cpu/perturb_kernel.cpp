#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "common/counter_rng.h"
#include "ops/perturb.h"

namespace unlearn {
namespace {

at::Tensor perturb_cpu(const at::Tensor& x, int64_t copies, double sigma, int64_t seed) {
  check_perturb(x, copies, sigma, physical_memory_bytes());
  const auto src = x.contiguous();
  auto out = empty_copies(src, copies);
  const int64_t numel = src.numel();
  const uint32_t state = seed_state(seed);
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "perturb_cpu", [&] {
    const scalar_t* in = src.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    at::parallel_for(0, copies * numel, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        dst[k] = in[k % numel] + static_cast<scalar_t>(sigma * counter_normal(state, k));
      }
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(unlearn, CPU, m) { m.impl("perturb", &perturb_cpu); }

}  // namespace unlearn
