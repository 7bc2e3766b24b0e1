// Counter-based standard normal noise: element k of a call with seed s is a
// pure function of (s, k), so every backend and every thread layout draws the
// same value. Written again in python/unlearn/ops/reference/counter_rng.py.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/tie_key.h"

namespace unlearn {

// Two 32-bit words from one 64-bit counter.
UNLEARN_HD void counter_words(uint32_t state, uint64_t k, uint32_t& a, uint32_t& b) {
  const uint32_t h =
      mix32(state ^ mix32(static_cast<uint32_t>(k) ^ mix32(static_cast<uint32_t>(k >> 32) + 0x632be5abu)));
  a = mix32(h ^ 0x85ebca6bu);
  b = mix32(h ^ 0xc2b2ae35u);
}

// Box-Muller in float64: u1 in (0, 1], u2 in [0, 1).
UNLEARN_HD double counter_normal(uint32_t state, uint64_t k) {
  uint32_t a, b;
  counter_words(state, k, a, b);
  const double u1 = (static_cast<double>(a) + 1.0) * 2.3283064365386963e-10;  // 2^-32
  const double u2 = static_cast<double>(b) * 2.3283064365386963e-10;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

}  // namespace unlearn
