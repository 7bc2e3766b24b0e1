#include "cpu/neighbors.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <vector>

#include "common/tie_key.h"

namespace unlearn::cpu {

namespace {

constexpr int64_t kLeafSize = 16;
constexpr int64_t kMaxTreeDim = 8;    // above this, a tree prunes too little
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

template <typename T>
Nearest<T> no_neighbor() {
  return {std::numeric_limits<T>::infinity(), std::numeric_limits<uint32_t>::max(), -1};
}

// A k-d tree over a reordered copy of the points. Every split plane passes
// through a data point: the left child holds coordinates <= split and the right
// child coordinates >= split, so the squared plane distance is a true lower
// bound of any computed distance on the far side (rounding is monotone).
template <typename T>
class KdTree {
 public:
  KdTree(const T* points, int64_t n, int64_t d) : d_(d), perm_(n), coords_(n * d) {
    std::iota(perm_.begin(), perm_.end(), int64_t{0});
    nodes_.reserve(2 * (n / kLeafSize + 1));
    build(points, 0, n);
    for (int64_t t = 0; t < n; ++t) {
      std::copy(points + perm_[t] * d, points + (perm_[t] + 1) * d, coords_.data() + t * d);
    }
  }

  // Nearest neighbour of point i (coordinates q) among all other points.
  int64_t query(const T* q, int64_t i, uint32_t state) const {
    Nearest<T> best = no_neighbor<T>();
    struct Pending {
      int32_t node;
      T bound;
    };
    Pending stack[128];
    int top = 0;
    stack[top++] = {0, T(0)};
    while (top > 0) {
      const Pending item = stack[--top];
      if (item.bound > best.dist) continue;
      const Node& node = nodes_[item.node];
      if (node.left < 0) {
        for (int64_t t = node.lo; t < node.hi; ++t) {
          const int64_t j = perm_[t];
          if (j == i) continue;
          best.offer(squared_distance(q, coords_.data() + t * d_, d_), state, i, j);
        }
        continue;
      }
      const T diff = q[node.dim] - node.split;
      const T plane = diff * diff;
      const int32_t near_child = diff <= T(0) ? node.left : node.right;
      const int32_t far_child = diff <= T(0) ? node.right : node.left;
      stack[top++] = {far_child, plane};
      stack[top++] = {near_child, item.bound};
    }
    return best.index;
  }

 private:
  struct Node {
    int64_t lo, hi;
    int32_t dim, left, right;
    T split;
  };

  int32_t build(const T* points, int64_t lo, int64_t hi) {
    const int32_t id = static_cast<int32_t>(nodes_.size());
    nodes_.push_back({lo, hi, 0, -1, -1, T(0)});
    if (hi - lo <= kLeafSize) return id;
    // Split the widest dimension at its median point.
    int32_t dim = 0;
    T widest = -1;
    for (int64_t c = 0; c < d_; ++c) {
      T mn = std::numeric_limits<T>::infinity(), mx = -mn;
      for (int64_t t = lo; t < hi; ++t) {
        const T v = points[perm_[t] * d_ + c];
        mn = std::min(mn, v);
        mx = std::max(mx, v);
      }
      if (mx - mn > widest) {
        widest = mx - mn;
        dim = static_cast<int32_t>(c);
      }
    }
    const int64_t mid = lo + (hi - lo) / 2;
    std::nth_element(perm_.begin() + lo, perm_.begin() + mid, perm_.begin() + hi,
                     [&](int64_t a, int64_t b) { return points[a * d_ + dim] < points[b * d_ + dim]; });
    const T split = points[perm_[mid] * d_ + dim];
    const int32_t left = build(points, lo, mid);
    const int32_t right = build(points, mid, hi);
    nodes_[id].dim = dim;
    nodes_[id].split = split;
    nodes_[id].left = left;
    nodes_[id].right = right;
    return id;
  }

  int64_t d_;
  std::vector<int64_t> perm_;
  std::vector<T> coords_;
  std::vector<Node> nodes_;
};

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
    const KdTree<T> tree(points, n, d);
    at::parallel_for(0, n, 512, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) out[i] = tree.query(points + i * d, i, state);
    });
    return;
  }
  at::parallel_for(0, n, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = brute_force_query(points, n, d, i, state);
  });
}

template void nearest_neighbors<float>(const float*, int64_t, int64_t, int64_t, int64_t*);
template void nearest_neighbors<double>(const double*, int64_t, int64_t, int64_t, int64_t*);

}  // namespace unlearn::cpu
