// Exact nearest neighbours by a dense scan of all pairs, vectorised across
// candidates: the path of nearest_neighbor where a k-d tree prunes too little
// (d > 8) or is not worth building (few points).
//
// Each SIMD lane computes one pair's distance with the scalar formula's
// operations in its order: subtract, square, add to the running sum, column by
// column (the build disables fused multiply-add). A lane rounds exactly as the
// scalar loop does, so no error bound is needed: the distances are the op's own,
// and the tie rule (Nearest::offer) settles equal ones, duplicates included.
// (The expanded form |a|^2 + |b|^2 - 2 a.b as a GEMM would need a rounding
// bound and an exact re-check of the candidates it leaves; this is simpler and
// was faster than torch.cdist + argmin without it.)
//
// The points are packed in blocks of two vectors' worth of rows, each block
// column-major, padded with NaN rows (a NaN distance never wins). A pair's
// distance does not depend on which point is the query ((a - b)^2 == (b - a)^2
// in floating point), so each pair of blocks is scanned once and offered to
// both sides: block a meets blocks a .. a + blocks / 2 (cyclically), the same
// work for every a. A tile of 4-8 rows against a block keeps its sums in
// registers; most tiles beat no current best, which an integer test on the
// sums' bit patterns tells at once. Threads keep their own bests and merge
// them (the tie rule is a total order). The vector width follows the
// instruction set torch picked for its own CPU kernels (AVX-512, AVX2, or the
// baseline's 16 bytes).
#pragma once
#include <cstdint>

namespace unlearn::cpu {

// For every row i of `points` (n x d, row-major), writes to out[i] the index of
// the nearest row j != i, exact ties going to the smaller tie_key(state, i, j).
template <typename T>
void dense_nearest_neighbors(const T* points, int64_t n, int64_t d, uint32_t state, int64_t* out);

}  // namespace unlearn::cpu
