// Tie-break key for nearest-neighbour searches.
//
// When two candidates j, k are at exactly the same distance from point i, the
// one with the smaller key(seed, i, .) wins (then the smaller index). The key is
// a hash, so every backend and every traversal order picks the same neighbour,
// and over seeds the choice is uniform among the tied candidates. The same
// function is written in python/unlearn/ops/reference/tie_key.py.
#pragma once
#include <cstdint>
#include <limits>

#if defined(__CUDACC__)
#define UNLEARN_HD __host__ __device__ __forceinline__
#else
#define UNLEARN_HD inline
#endif

namespace unlearn {

// "lowbias32" integer mixer (C. Wellons): a bijection on 32-bit words.
UNLEARN_HD uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// Folds a 64-bit seed into the 32-bit state shared by all keys of one call.
UNLEARN_HD uint32_t seed_state(int64_t seed) {
  const uint64_t s = static_cast<uint64_t>(seed);
  return mix32(static_cast<uint32_t>(s) ^ mix32(static_cast<uint32_t>(s >> 32) + 0x9e3779b9u));
}

UNLEARN_HD uint32_t tie_key(uint32_t state, int64_t i, int64_t j) {
  return mix32(mix32(state ^ static_cast<uint32_t>(i)) ^ static_cast<uint32_t>(j));
}

// Running best neighbour of one point: smallest distance, then smallest key,
// then smallest index.
template <typename scalar_t>
struct Nearest {
  scalar_t dist;
  uint32_t key;
  int64_t index;

  // Offers candidate j at distance d; `state` and `i` give its tie key.
  UNLEARN_HD void offer(scalar_t d, uint32_t state, int64_t i, int64_t j) {
    if (d > dist) return;
    const uint32_t k = tie_key(state, i, j);
    if (d < dist || k < key || (k == key && j < index)) {
      dist = d;
      key = k;
      index = j;
    }
  }
};

// The running best before any candidate: every candidate beats it.
template <typename scalar_t>
UNLEARN_HD Nearest<scalar_t> no_neighbor() {
  return {std::numeric_limits<scalar_t>::infinity(), std::numeric_limits<uint32_t>::max(), -1};
}

}  // namespace unlearn
