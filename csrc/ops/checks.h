// Argument checks shared by every backend of every op. They raise ValueError
// (TORCH_CHECK_VALUE) naming the offending argument.
#pragma once
#include <ATen/ATen.h>

namespace unlearn {

// A float32/float64 matrix of shape (n, d) with n >= 2, d >= 1 and finite values.
void check_points(const char* op, const char* name, const at::Tensor& x);

// A float32/float64 vector of length n with finite, not all equal values.
void check_response(const char* op, const char* name, const at::Tensor& y, int64_t n);

// `other` has the dtype, device and row count of `ref`.
void check_same_rows(const char* op, const char* name, const at::Tensor& other,
                     const char* ref_name, const at::Tensor& ref);

void check_nearest_neighbor(const at::Tensor& x);
void check_codec(const at::Tensor& y, const at::Tensor& z, const std::optional<at::Tensor>& x);
void check_codec_select(const at::Tensor& y, const at::Tensor& features, int64_t max_select,
                        int64_t max_cache_bytes);
void check_codec_step(const at::Tensor& y, const at::Tensor& candidates, const at::Tensor& selected,
                      int64_t row_begin, int64_t row_end, const std::optional<at::Tensor>& cache);

}  // namespace unlearn

namespace unlearn {

void check_perturb(const at::Tensor& x, int64_t copies, double sigma);
void check_channel_means(const at::Tensor& act, const at::Tensor& out, int64_t column);
void check_block_solve(at::TensorList blocks, const at::Tensor& g, double damping,
                       const std::vector<bool>& low_rank);

}  // namespace unlearn
