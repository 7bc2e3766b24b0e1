// Exact all-points nearest neighbours in low dimensions: a k-d tree whose
// queries are its own points.
//
// The dimension is a template parameter (1..kMaxTreeDim), so a point is a
// fixed-size row that moves as one block and every distance loop is unrolled.
// The tree splits at the median of the cell's widest side (a quickselect whose
// partitions swap every row instead of branching on it), so every split plane
// passes through a data point: the left child holds coordinates <= split and
// the right child >= split. Nodes are heap-indexed (children of k are 2k+1,
// 2k+2) over halving ranges, so every leaf is at one depth, leaves need no
// storage, and disjoint subtrees are built in parallel.
// The points of one leaf are queried together: all their distances within the
// leaf are computed once (each serves both of its points), then each point
// climbs the leaf's ancestors, deepest first, and enters the other child of
// one only while the split plane is within its best distance. Inside, a far
// child is entered only while the distance to its cell is within the best,
// that distance rebuilt from per-dimension offsets to the cell (Arya and
// Mount's incremental distance), each offset the rounded difference to the
// nearest split plane of that dimension on the way down. Rounded subtraction,
// squaring and addition in column order are monotone, so a bound never exceeds
// a computed point distance in the cell: the search is exact, ties included
// (Nearest<T>::offer orders candidates by distance, tie key and index,
// whatever the visiting order).
#pragma once
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/tie_key.h"

namespace unlearn::cpu {

inline constexpr int64_t kLeafSize = 24;  // leaves hold kLeafSize / 2 to kLeafSize + 1 points
inline constexpr int kMaxTreeDim = 8;     // above this, a tree prunes too little

namespace kd_tree_detail {

template <typename T, int D>
struct Row {
  T x[D];
  int64_t index;  // row of the input
};

// sum_c (a_c - b_c)^2 in column order, as every backend and the twin sum it.
template <typename T, int D>
inline T squared_distance(const T* a, const T* b) {
  T s = 0;
  for (int c = 0; c < D; ++c) {
    const T diff = a[c] - b[c];
    s += diff * diff;
  }
  return s;
}

template <typename T, int D>
class KdTree {
  // Leaves are at the first depth where n / leaves < kLeafSize + 1, and
  // halving keeps every leaf within one row of the average.
  static constexpr int64_t kMaxLeaf = kLeafSize + 1;

 public:
  KdTree(const T* points, int64_t n) : rows_(n) {
    for (int64_t i = 0; i < n; ++i) {
      std::copy(points + i * D, points + (i + 1) * D, rows_[i].x);
      rows_[i].index = i;
    }
    int64_t leaf_count = 1;
    while (n / leaf_count > kLeafSize) leaf_count *= 2;
    nodes_.resize(leaf_count - 1);
    if (!nodes_.empty()) build(0, 0, n, bounding_box(0, n));
  }

  // Number of leaves.
  int64_t leaves() const { return static_cast<int64_t>(nodes_.size()) + 1; }

  // Writes the nearest other point of every point of leaf k (left to right)
  // to out[its input index].
  void query_leaf(int64_t k, uint32_t state, int64_t* out) const {
    struct Fork {
      int64_t node;  // an ancestor of the leaf
      Range other;   // its child that does not hold the leaf
    };
    Fork forks[64];
    int depth = 0;
    Range leaf{0, 0, static_cast<int64_t>(rows_.size())};
    for (int64_t bit = leaves() / 2; bit > 0; bit /= 2) {  // k's bits, from the top, give the way down
      const int side = (k & bit) ? 1 : 0;
      forks[depth++] = {leaf.id, child(leaf, 1 - side)};
      leaf = child(leaf, side);
    }
    Nearest<T> own[kMaxLeaf];
    own_leaf(leaf, state, own);
    for (int64_t t = leaf.lo; t < leaf.hi; ++t) {
      Nearest<T> best = own[t - leaf.lo];
      T offsets[D] = {};  // the point lies in every ancestor's cell
      for (int f = depth - 1; f >= 0; --f) {
        const Node node = nodes_[forks[f].node];
        const T diff = rows_[t].x[node.dim] - node.split;
        if (diff * diff > best.dist) continue;
        offsets[node.dim] = diff;
        search(forks[f].other, t, offsets, state, best);
        offsets[node.dim] = 0;
      }
      out[rows_[t].index] = best.index;
    }
  }

 private:
  struct Node {
    T split;
    int32_t dim;
  };
  struct Box {
    T lo[D], hi[D];
  };
  // A node and its rows [lo, hi).
  struct Range {
    int64_t id, lo, hi;
  };

  bool is_leaf(int64_t id) const { return id >= static_cast<int64_t>(nodes_.size()); }

  // Child `side` (0 left, 1 right) of node r.
  static Range child(const Range& r, int side) {
    const int64_t mid = r.lo + (r.hi - r.lo) / 2;
    return side == 0 ? Range{2 * r.id + 1, r.lo, mid} : Range{2 * r.id + 2, mid, r.hi};
  }

  // The smallest box holding rows [lo, hi) (lo < hi).
  Box bounding_box(int64_t lo, int64_t hi) const {
    Box box;
    std::copy(rows_[lo].x, rows_[lo].x + D, box.lo);
    std::copy(rows_[lo].x, rows_[lo].x + D, box.hi);
    for (int64_t t = lo + 1; t < hi; ++t) {
      for (int c = 0; c < D; ++c) {
        box.lo[c] = std::min(box.lo[c], rows_[t].x[c]);
        box.hi[c] = std::max(box.hi[c], rows_[t].x[c]);
      }
    }
    return box;
  }

  // A value of column dim near the median of rows [lo, hi): the median of
  // three medians of three spread samples, or the middle row's below nine rows.
  T pivot(int64_t lo, int64_t hi, int32_t dim) const {
    const int64_t m = hi - lo;
    const auto at = [&](int64_t k) { return rows_[lo + k * (m - 1) / 8].x[dim]; };
    const auto median3 = [](T a, T b, T c) { return std::max(std::min(a, b), std::min(std::max(a, b), c)); };
    if (m < 9) return rows_[lo + m / 2].x[dim];
    return median3(median3(at(0), at(1), at(2)), median3(at(3), at(4), at(5)), median3(at(6), at(7), at(8)));
  }

  // Moves the rows of [lo, hi) whose column dim satisfies `keep` to its front,
  // keeping the order of neither part; returns where the rest starts. Every
  // row is swapped, kept or not, so there is no branch to mispredict: a row
  // that is not kept only trades places with another such row.
  template <typename Keep>
  int64_t partition(int64_t lo, int64_t hi, int32_t dim, Keep keep) {
    int64_t front = lo;
    for (int64_t t = lo; t < hi; ++t) {
      const bool kept = keep(rows_[t].x[dim]);
      std::swap(rows_[t], rows_[front]);
      front += kept;
    }
    return front;
  }

  // Moves the rows so that row kth holds the kth smallest value of column dim
  // in [lo, hi), smaller-or-equal values before it and greater-or-equal after:
  // a quickselect that splits off the values < pivot, and only when there are
  // none (the pivot is the least value) the values == pivot, so that every
  // round shrinks the range, ties or not.
  void select(int64_t lo, int64_t hi, int64_t kth, int32_t dim) {
    while (hi - lo > 1) {
      const T p = pivot(lo, hi, dim);
      const int64_t split = partition(lo, hi, dim, [p](T v) { return v < p; });
      if (split > lo) {
        (kth < split ? hi : lo) = split;
        continue;
      }
      const int64_t greater = partition(lo, hi, dim, [p](T v) { return v == p; });
      if (kth < greater) return;
      lo = greater;
    }
  }

  // Splits rows [lo, hi), which lie in `cell`, at the median of the cell's
  // widest dimension, then builds both halves (side by side at the root).
  void build(int64_t id, int64_t lo, int64_t hi, const Box& cell) {
    int32_t dim = 0;
    for (int c = 1; c < D; ++c) {
      if (cell.hi[c] - cell.lo[c] > cell.hi[dim] - cell.lo[dim]) dim = c;
    }
    const int64_t mid = lo + (hi - lo) / 2;
    select(lo, hi, mid, dim);
    nodes_[id] = {rows_[mid].x[dim], dim};
    const auto child = [&](int64_t side) {
      const int64_t c = 2 * id + 1 + side;
      if (is_leaf(c)) return;
      Box part = cell;
      (side == 0 ? part.hi : part.lo)[dim] = nodes_[id].split;
      build(c, side == 0 ? lo : mid, side == 0 ? mid : hi, part);
    };
    if (id == 0) {
      at::parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
        for (int64_t side = begin; side < end; ++side) child(side);
      });
    } else {
      child(0);
      child(1);
    }
  }

  // The smallest of v[0..m), +inf if m == 0, in four independent running
  // minima (one chain would wait on every comparison).
  static T smallest(const T* v, int64_t m) {
    T a = std::numeric_limits<T>::infinity(), b = a, c = a, d = a;
    int64_t u = 0;
    for (; u + 4 <= m; u += 4) {
      a = std::min(a, v[u]);
      b = std::min(b, v[u + 1]);
      c = std::min(c, v[u + 2]);
      d = std::min(d, v[u + 3]);
    }
    for (; u < m; ++u) a = std::min(a, v[u]);
    return std::min(std::min(a, b), std::min(c, d));
  }

  // Every point's nearest other point in its own leaf. Each distance is
  // computed once for both of its points: the two are equal, as swapping the
  // operands of a rounded difference only flips its sign.
  void own_leaf(const Range& leaf, uint32_t state, Nearest<T>* best) const {
    const Row<T, D>* r = rows_.data() + leaf.lo;
    const int64_t m = leaf.hi - leaf.lo;
    T dist[kMaxLeaf][kMaxLeaf];
    for (int64_t a = 0; a < m; ++a) {
      dist[a][a] = std::numeric_limits<T>::infinity();
      for (int64_t b = 0; b < a; ++b) dist[a][b] = dist[b][a] = squared_distance<T, D>(r[a].x, r[b].x);
    }
    for (int64_t a = 0; a < m; ++a) {
      best[a] = no_neighbor<T>();
      offer_nearest(dist[a], r, m, a, r[a].index, state, best[a]);
    }
  }

  // Offers the rows r[u] (u < m, u != self) at the least distance dist[u] to
  // the point with input index `query`, if that distance is <= the best so far
  // (an exact tie among them is then settled by the tie key).
  static void offer_nearest(const T* dist, const Row<T, D>* r, int64_t m, int64_t self, int64_t query, uint32_t state,
                            Nearest<T>& best) {
    const T least = smallest(dist, m);
    if (least > best.dist) return;
    for (int64_t u = 0; u < m; ++u) {
      if (dist[u] == least && u != self) best.offer(least, state, query, r[u].index);
    }
  }

  // Offers the nearest points of a leaf to the point at row t (not in it).
  void scan(const Range& leaf, int64_t t, uint32_t state, Nearest<T>& best) const {
    const Row<T, D>* r = rows_.data() + leaf.lo;
    const int64_t m = leaf.hi - leaf.lo;
    T dist[kMaxLeaf];
    for (int64_t u = 0; u < m; ++u) dist[u] = squared_distance<T, D>(rows_[t].x, r[u].x);
    offer_nearest(dist, r, m, -1, rows_[t].index, state, best);
  }

  // Searches node r for the point at row t, whose offsets to r's cell are
  // `offsets`: the child on the point's side first, then the other one if
  // its cell is within the best distance.
  void search(const Range& r, int64_t t, T* offsets, uint32_t state, Nearest<T>& best) const {
    if (is_leaf(r.id)) return scan(r, t, state, best);
    const Node node = nodes_[r.id];
    const T diff = rows_[t].x[node.dim] - node.split;
    const int near = diff <= T(0) ? 0 : 1;
    search(child(r, near), t, offsets, state, best);
    T bound = 0;  // the squared distance to the far child's cell, in column order
    for (int c = 0; c < D; ++c) {
      const T o = c == node.dim ? diff : offsets[c];
      bound += o * o;
    }
    if (bound > best.dist) return;
    const T old = offsets[node.dim];
    offsets[node.dim] = diff;
    search(child(r, 1 - near), t, offsets, state, best);
    offsets[node.dim] = old;
  }

  std::vector<Row<T, D>> rows_;  // the points in tree order
  std::vector<Node> nodes_;      // internal nodes; ids from nodes_.size() on are leaves
};

template <typename T, int D>
void tree_neighbors(const T* points, int64_t n, uint32_t state, int64_t* out) {
  const KdTree<T, D> tree(points, n);
  at::parallel_for(0, tree.leaves(), 32, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) tree.query_leaf(k, state, out);
  });
}

template <typename T, int D = 1>
void tree_neighbors_of_dim(const T* points, int64_t n, int64_t d, uint32_t state, int64_t* out) {
  if constexpr (D < kMaxTreeDim) {
    if (d > D) return tree_neighbors_of_dim<T, D + 1>(points, n, d, state, out);
  }
  tree_neighbors<T, D>(points, n, state, out);
}

}  // namespace kd_tree_detail

// For every row i of `points` (n x d, row-major, 1 <= d <= kMaxTreeDim), writes
// to out[i] the index of the nearest row j != i, exact ties to the smaller
// tie_key(state, i, j), then the smaller j.
template <typename T>
void kd_tree_neighbors(const T* points, int64_t n, int64_t d, uint32_t state, int64_t* out) {
  kd_tree_detail::tree_neighbors_of_dim<T>(points, n, d, state, out);
}

}  // namespace unlearn::cpu
