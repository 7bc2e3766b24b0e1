#include "cpu/neighbors.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <vector>

#include "common/tie_key.h"
#include "cpu/neighbors_dense.h"

namespace unlearn::cpu {

namespace {

constexpr int64_t kLeafSize = 16;
constexpr int64_t kMaxTreeDim = 8;  // above this, a tree prunes too little
constexpr int64_t kMinTreePoints = 256;

template <typename T>
inline T squared_distance(const T* a, const T* b, int64_t d) {
  T s = 0;
  for (int64_t c = 0; c < d; ++c) {
    const T diff = a[c] - b[c];
    s += diff * diff;
  }
  return s;
}

// A k-d tree over a reordered copy of the points. Every split plane passes
// through a data point: the left child holds coordinates <= split and the right
// child coordinates >= split, so the squared plane distance is a true lower
// bound of any computed distance on the far side (rounded subtraction,
// squaring and addition are monotone): the search stays exact, ties included.
// (Bounding-box bounds prune more but measured slower at d <= 8.)
// Nodes are heap-indexed (children of k are 2k+1, 2k+2) over fixed ranges, so
// disjoint subtrees are built in parallel; rows are partitioned in place, so
// every pass reads memory in order.
template <typename T>
class KdTree {
 public:
  KdTree(const T* points, int64_t n, int64_t d) : n_(n), d_(d), perm_(n), coords_(points, points + n * d) {
    std::iota(perm_.begin(), perm_.end(), int64_t{0});
    int64_t leaves = 1;
    while (n / leaves > kLeafSize) leaves *= 2;
    nodes_.resize(2 * leaves - 1);
    build(0, 0, n);
  }

  int64_t size() const { return n_; }
  int64_t index(int64_t t) const { return perm_[t]; }
  const T* point(int64_t t) const { return coords_.data() + t * d_; }

  // Nearest neighbour of point i (coordinates q) among all other points.
  int64_t query(const T* q, int64_t i, uint32_t state) const {
    Nearest<T> best = no_neighbor<T>();
    struct Pending {
      int64_t node;
      T bound;
    };
    Pending stack[128];
    int top = 0;
    stack[top++] = {0, T(0)};
    while (top > 0) {
      const Pending item = stack[--top];
      if (item.bound > best.dist) continue;
      const Node& node = nodes_[item.node];
      if (node.leaf) {
        for (int64_t t = node.lo; t < node.hi; ++t) {
          const int64_t j = perm_[t];
          if (j != i) best.offer(squared_distance(q, point(t), d_), state, i, j);
        }
        continue;
      }
      const T diff = q[node.dim] - node.split;
      const int64_t left = 2 * item.node + 1;
      const T plane = diff * diff;
      if (plane <= best.dist) stack[top++] = {diff <= T(0) ? left + 1 : left, plane};  // far child
      stack[top++] = {diff <= T(0) ? left : left + 1, item.bound};                     // near child first
    }
    return best.index;
  }

 private:
  struct Node {
    int64_t lo = 0, hi = 0;
    int32_t dim = 0;
    bool leaf = true;
    T split = 0;
  };

  void swap_rows(int64_t a, int64_t b) {
    std::swap(perm_[a], perm_[b]);
    std::swap_ranges(coords_.begin() + a * d_, coords_.begin() + (a + 1) * d_, coords_.begin() + b * d_);
  }

  // Moves the rows so that row `kth` holds the kth smallest value of `dim` in
  // [lo, hi), smaller-or-equal values before it and greater-or-equal after.
  void select(int64_t lo, int64_t hi, int64_t kth, int32_t dim) {
    const auto at = [&](int64_t r) { return coords_[r * d_ + dim]; };
    while (hi - lo > 1) {
      const T a = at(lo), b = at(lo + (hi - lo) / 2), c = at(hi - 1);
      const T pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));  // median of three
      int64_t lt = lo, i = lo, gt = hi;  // three-way partition: < pivot, == pivot, > pivot
      while (i < gt) {
        const T v = at(i);
        if (v < pivot) {
          swap_rows(lt++, i++);
        } else if (v > pivot) {
          swap_rows(i, --gt);
        } else {
          ++i;
        }
      }
      if (kth < lt) {
        hi = lt;
      } else if (kth >= gt) {
        lo = gt;
      } else {
        return;
      }
    }
  }

  void build(int64_t id, int64_t lo, int64_t hi) {
    Node& node = nodes_[id];
    node.lo = lo;
    node.hi = hi;
    if (2 * id + 2 >= static_cast<int64_t>(nodes_.size()) || hi - lo <= kLeafSize) return;
    // Split the widest dimension at its median point.
    std::vector<T> mn(d_, std::numeric_limits<T>::infinity()), mx(d_, -std::numeric_limits<T>::infinity());
    for (int64_t t = lo; t < hi; ++t) {
      for (int64_t c = 0; c < d_; ++c) {
        mn[c] = std::min(mn[c], coords_[t * d_ + c]);
        mx[c] = std::max(mx[c], coords_[t * d_ + c]);
      }
    }
    int32_t dim = 0;
    for (int64_t c = 1; c < d_; ++c) {
      if (mx[c] - mn[c] > mx[dim] - mn[dim]) dim = static_cast<int32_t>(c);
    }
    const int64_t mid = lo + (hi - lo) / 2;
    select(lo, hi, mid, dim);
    node.leaf = false;
    node.dim = dim;
    node.split = coords_[mid * d_ + dim];
    if (id == 0) {  // the two halves are disjoint rows and nodes: build them side by side
      at::parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
        for (int64_t side = begin; side < end; ++side) {
          build(1 + side, side == 0 ? lo : mid, side == 0 ? mid : hi);
        }
      });
    } else {
      build(2 * id + 1, lo, mid);
      build(2 * id + 2, mid, hi);
    }
  }

  int64_t n_, d_;
  std::vector<int64_t> perm_;
  std::vector<T> coords_;
  std::vector<Node> nodes_;
};

}  // namespace

template <typename T>
void nearest_neighbors(const T* points, int64_t n, int64_t d, int64_t seed, int64_t* out) {
  const uint32_t state = seed_state(seed);
  if (d <= kMaxTreeDim && n >= kMinTreePoints) {
    const KdTree<T> tree(points, n, d);
    // Queries in tree order: neighbouring queries walk the same nodes.
    at::parallel_for(0, n, 512, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) out[tree.index(t)] = tree.query(tree.point(t), tree.index(t), state);
    });
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
