#include "ops/checks.h"

namespace unlearn {

void check_nearest_neighbor(const at::Tensor& x) { check_points("nearest_neighbor", "x", x); }

}  // namespace unlearn
