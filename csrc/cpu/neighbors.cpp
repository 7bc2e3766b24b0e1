#include "cpu/neighbors.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "common/tie_key.h"
#include "cpu/kd_tree.h"

namespace unlearn::cpu {

namespace {

constexpr int64_t kMinTreePoints = 256;

// Brute force with early abandoning: a partial sum above the best distance can
// only grow, so the rest of that candidate's coordinates are skipped.
template <typename T>
int64_t brute_force_query(const T* points, int64_t n, int64_t d, int64_t i, uint32_t state) {
  const T* q = points + i * d;
  Nearest<T> best = no_neighbor<T>();
  for (int64_t j = 0; j < n; ++j) {
    if (j == i) continue;
    const T* p = points + j * d;
    T s = 0;
    int64_t c = 0;
    for (; c < d; ++c) {
      const T diff = q[c] - p[c];
      s += diff * diff;
      if (s > best.dist) break;
    }
    if (c == d) best.offer(s, state, i, j);
  }
  return best.index;
}

}  // namespace

template <typename T>
void nearest_neighbors(const T* points, int64_t n, int64_t d, int64_t seed, int64_t* out) {
  const uint32_t state = seed_state(seed);
  if (d <= kMaxTreeDim && n >= kMinTreePoints) {
    kd_tree_neighbors(points, n, d, state, out);
    return;
  }
  at::parallel_for(0, n, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = brute_force_query(points, n, d, i, state);
  });
}

template void nearest_neighbors<float>(const float*, int64_t, int64_t, int64_t, int64_t*);
template void nearest_neighbors<double>(const double*, int64_t, int64_t, int64_t, int64_t*);

at::Tensor nearest_neighbors(const at::Tensor& points, int64_t seed) {
  const auto x = points.contiguous();
  auto out = at::empty({x.size(0)}, x.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "nearest_neighbor_cpu", [&] {
    nearest_neighbors(x.data_ptr<scalar_t>(), x.size(0), x.size(1), seed, out.data_ptr<int64_t>());
  });
  return out;
}

}  // namespace unlearn::cpu
