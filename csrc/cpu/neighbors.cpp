#include "cpu/neighbors.h"

#include "common/tie_key.h"
#include "cpu/kd_tree.h"
#include "cpu/neighbors_dense.h"

namespace unlearn::cpu {

namespace {

constexpr int64_t kMinTreePoints = 256;  // fewer points are not worth a tree: the dense scan takes them

}  // namespace

template <typename T>
void nearest_neighbors(const T* points, int64_t n, int64_t d, int64_t seed, int64_t* out) {
  const uint32_t state = seed_state(seed);
  if (d <= kMaxTreeDim && n >= kMinTreePoints) {
    kd_tree_neighbors(points, n, d, state, out);
    return;
  }
  dense_nearest_neighbors(points, n, d, state, out);
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
