// Solves (H_b + damping I) x_b = g_b for many parameter blocks at once.
//
// A block is dense (H_b, d x d) or a low-rank factor (U_b, m x d, H_b = U_b^T U_b / m).
// Blocks of the same kind and shape are stacked and solved in one batched call:
// Cholesky for dense blocks and for factors with m >= d; the Woodbury identity
//   (damping I + U^T U / m)^-1 g = (g - U^T (damping I + U U^T / m)^-1 U g / m) / damping
// for factors with m < d, which costs O(m^2 d) instead of O(d^3). A float32
// block with a float64 g has its product (U U^T or U^T U) formed in float32,
// as accurate as its own entries and twice as fast (in float64 where its
// entries would take float32 products out of range: `product_dtype`), and
// everything else in float64. g is scaled by a power of two chosen with the
// block (`scale_exponent`), so that the solution stays in range. A dense
// block is taken as symmetric: only its lower triangle (diagonal included)
// is read, by the kernel and by the twin. A block whose factorisation fails,
// is singular to rounding (`singular`) or gives a solution that is not
// finite is refused, naming it.
// Written with ATen ops only, so the same code serves every device.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <map>
#include <tuple>

#include "ops/block_solve.h"

namespace unlearn {
namespace {

// Lowers `first_bad` to the smallest block id of `ids` whose entry of `bad`
// (a boolean per batch member) is set.
void note_bad(const at::Tensor& bad, const std::vector<int64_t>& ids, int64_t& first_bad) {
  const auto where = at::nonzero(bad);
  if (where.numel() > 0) first_bad = std::min(first_bad, ids[where[0][0].item<int64_t>()]);
}

// Cholesky factors of a batch of SPD matrices (their lower triangles are
// read); lowers `first_bad` to the smallest block id whose factorisation
// failed.
at::Tensor cholesky(const at::Tensor& a, const std::vector<int64_t>& ids, int64_t& first_bad) {
  auto [factor, info] = at::linalg_cholesky_ex(a);
  note_bad(info != 0, ids, first_bad);
  return factor;
}

// Whether each damped d x d matrix of a batch is singular to rounding: some
// squared Cholesky pivot at most max(d, 16) eps times its own diagonal entry
// (the share of that column the earlier ones leave unexplained is lost in
// rounding; unchanged by a rescaling D H D). Whether such a factorisation
// passes is noise, so it is refused either way, as by the twin.
at::Tensor singular(const at::Tensor& factor, const at::Tensor& h, double eps) {
  const double tolerance = static_cast<double>(std::max<int64_t>(h.size(-1), 16)) * eps;
  return (factor.diagonal(0, 1, 2).square() <= h.diagonal(0, 1, 2) * tolerance).any(1);
}

// U r and then U^T w / m for the stacked factors U (B, m, d, the blocks'
// dtype) in `dtype`, converted `conversion_rows` rows at a time.
at::Tensor times(const at::Tensor& u, const at::Tensor& r, at::ScalarType dtype) {
  std::vector<at::Tensor> parts;
  const int64_t rows = conversion_rows(u.size(2));
  for (int64_t start = 0; start < u.size(1); start += rows) {
    parts.push_back(at::matmul(u.narrow(1, start, std::min(rows, u.size(1) - start)).to(dtype), r));
  }
  return at::cat(parts, 1);
}

at::Tensor times_transposed(const at::Tensor& u, const at::Tensor& w, at::ScalarType dtype) {
  at::Tensor sum;
  const int64_t rows = conversion_rows(u.size(2));
  for (int64_t start = 0; start < u.size(1); start += rows) {
    const int64_t n = std::min(rows, u.size(1) - start);
    const auto part = at::matmul(u.narrow(1, start, n).to(dtype).transpose(1, 2), w.narrow(1, start, n));
    sum = sum.defined() ? sum.add_(part) : part;
  }
  return sum / static_cast<double>(u.size(1));
}

// The epsilon of a dtype (float32 or float64).
double epsilon(at::ScalarType dtype) {
  return dtype == at::kFloat ? std::numeric_limits<float>::epsilon() : std::numeric_limits<double>::epsilon();
}

at::Tensor block_solve(at::TensorList blocks, const at::Tensor& g, double damping,
                       const c10::List<bool>& low_rank_list) {
  const std::vector<bool> low_rank = low_rank_list.vec();
  const auto checked = check_block_solve(blocks, g, damping, low_rank);
  std::vector<int64_t> offsets(blocks.size() + 1, 0);
  for (size_t b = 0; b < blocks.size(); ++b) offsets[b + 1] = offsets[b] + blocks[b].size(1);

  // Group by (low rank, rows, columns, dtype, product dtype): a float32 block forms its product in
  // float32 even beside float64 blocks of its shape.
  std::map<std::tuple<bool, int64_t, int64_t, at::ScalarType, at::ScalarType>, std::vector<int64_t>> groups;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const auto product = low_rank[b] ? product_dtype(blocks[b], g.scalar_type()) : g.scalar_type();
    groups[{low_rank[b], blocks[b].size(0), blocks[b].size(1), blocks[b].scalar_type(), product}].push_back(
        static_cast<int64_t>(b));
  }
  auto out = at::empty_like(g);
  int64_t first_bad = static_cast<int64_t>(blocks.size());
  for (const auto& [key, ids] : groups) {
    const auto [factored, m, d, dtype, product] = key;
    std::vector<at::Tensor> mats, rhs;
    for (const int64_t b : ids) {
      mats.push_back(blocks[b]);
      rhs.push_back(g.narrow(0, offsets[b], d));
    }
    // (B, m, d) or (B, d, d), the blocks' dtype, for the branches that read the
    // blocks stacked: a lone contiguous block is not copied.
    const auto stacked = [&mats] { return mats.size() == 1 ? mats[0].contiguous().unsqueeze(0) : at::stack(mats); };
    // The right-hand sides scaled by exact powers of two (`scale_exponent`).
    const auto given = at::stack(rhs).unsqueeze(-1);  // (B, d, 1)
    const auto size = given.abs().amax({1, 2}, true).to(at::kDouble);
    std::vector<at::Tensor> tops;
    for (const int64_t b : ids) {
      if (!factored) {
        tops.push_back(blocks[b].diagonal().abs().amax().to(at::kDouble));
      } else if (checked[b].defined() && g.scalar_type() == at::kDouble) {
        tops.push_back(checked[b]);  // the check's very sums
      } else {
        tops.push_back(largest_diagonal(blocks[b], at::kDouble));
      }
    }
    const auto scale = at::exp2(scale_exponent(size, at::stack(tops).view({-1, 1, 1}), damping));
    const auto r = (given.to(at::kDouble) * scale).to(g.scalar_type());
    at::Tensor x;
    if (factored && m < d) {
      // U U^T / m, (B, m, m), each product on its own, bit for bit the twin's
      // (whose factorisation then passes or fails with the kernel's).
      std::vector<at::Tensor> products;
      for (const int64_t b : ids) {
        const auto u = blocks[b].to(product).contiguous();  // a layout does not change the rounding
        products.push_back(at::matmul(u, u.t()));
      }
      auto inner = at::stack(products).to(g.scalar_type()) / static_cast<double>(m);
      inner.diagonal(0, 1, 2).add_(damping);
      const auto factor = cholesky(inner, ids, first_bad);
      const auto stored = stacked();
      const auto w = at::cholesky_solve(times(stored, r, g.scalar_type()), factor);
      x = (r - times_transposed(stored, w, g.scalar_type())) / damping;
    } else {
      at::Tensor h;
      if (factored) {  // each product on its own, bit for bit the twin's (a batched one rounds otherwise)
        std::vector<at::Tensor> products;
        for (const int64_t b : ids) {
          const auto u = blocks[b].to(product);
          products.push_back(at::matmul(u.t(), u));
        }
        h = at::stack(products).to(g.scalar_type()) / static_cast<double>(m);
      } else {
        h = stacked().to(g.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
      }
      h.diagonal(0, 1, 2).add_(damping);
      const auto factor = cholesky(h, ids, first_bad);
      // A factor's product carries the rounding of its dtype; a dense block is solved in g's.
      note_bad(singular(factor, h, epsilon(factored ? product : g.scalar_type())), ids, first_bad);
      x = at::cholesky_solve(r, factor);
    }
    x = (x.to(at::kDouble) / scale).to(g.scalar_type());
    // A factorisation that passed can still be too ill-conditioned for the
    // dtype (a damping lost in rounding, a Woodbury division by a tiny
    // damping): refused like a failed one, as the twin refuses it.
    note_bad(at::logical_not(at::isfinite(x)).flatten(1).any(1), ids, first_bad);
    for (size_t t = 0; t < ids.size(); ++t) out.narrow(0, offsets[ids[t]], d).copy_(x[t].squeeze(-1));
  }
  if (first_bad < static_cast<int64_t>(blocks.size())) {
    const int64_t d = blocks[first_bad].size(1);
    TORCH_CHECK_VALUE(false, "block_solve: block ", first_bad, " (", low_rank[first_bad] ? "low-rank" : "dense", ", ",
                      d, " x ", d, ") is not positive definite after damping ", python_repr(damping),
                      " (or singular to rounding, or too ill-conditioned for a finite solution)");
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(unlearn, CompositeExplicitAutograd, m) { m.impl("block_solve", &block_solve); }

}  // namespace unlearn
