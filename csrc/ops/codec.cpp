#include "ops/checks.h"

namespace unlearn {

void check_codec(const at::Tensor& y, const at::Tensor& z, const std::optional<at::Tensor>& x) {
  check_points("codec", "z", z);
  if (x.has_value()) {
    check_points("codec", "x", *x);
    check_same_rows("codec", "x", *x, "z", z);
  }
  check_response("codec", "y", y, z.size(0));
  TORCH_CHECK_VALUE(y.device() == z.device(), "codec: y is on ", y.device(), " but z is on ",
                    z.device());
}

}  // namespace unlearn
