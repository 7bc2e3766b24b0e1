#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "ops/channel_means.h"

namespace unlearn {
namespace {

// Mean over the positions of every (sample, channel), accumulated in float64
// and written straight into columns [column, column + C) of `out`.
void channel_means_cpu(const at::Tensor& act, at::Tensor& out, int64_t column) {
  check_channel_means(act, out, column);
  const auto src = channel_means_input(act, out);
  const int64_t n = src.size(0), c = src.size(1), positions = src.numel() / std::max<int64_t>(n * c, 1);
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "channel_means_cpu", [&] {
    const scalar_t* in = src.data_ptr<scalar_t>();
    auto dst = out.accessor<scalar_t, 2>();
    at::parallel_for(0, n * c, 64, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const scalar_t* p = in + row * positions;
        double sum = 0;
        for (int64_t s = 0; s < positions; ++s) sum += p[s];
        dst[row / c][column + row % c] = static_cast<scalar_t>(sum / static_cast<double>(positions));
      }
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(unlearn, CPU, m) { m.impl("channel_means", &channel_means_cpu); }

}  // namespace unlearn
