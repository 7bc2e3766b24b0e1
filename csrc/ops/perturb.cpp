#include "ops/checks.h"

namespace unlearn {

void check_perturb(const at::Tensor& x, int64_t copies, double sigma) {
  TORCH_CHECK_VALUE(x.dim() >= 1 && x.numel() > 0, "perturb: x must be a non-empty tensor, got shape ",
                    x.sizes());
  TORCH_CHECK_VALUE(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
                    "perturb: x must be float32 or float64, got ", x.scalar_type());
  TORCH_CHECK_VALUE(copies >= 1, "perturb: copies must be >= 1, got ", copies);
  TORCH_CHECK_VALUE(std::isfinite(sigma) && sigma >= 0, "perturb: sigma must be finite and >= 0, got ",
                    sigma);
}

}  // namespace unlearn
