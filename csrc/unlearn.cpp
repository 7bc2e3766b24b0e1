// Op schemas of the torch.ops.unlearn namespace, and the Python module that
// loads them. The same schemas are written in python/unlearn/_schemas.py for the
// pure-PyTorch fallback; a test checks that the two agree.
#include <Python.h>
#include <torch/library.h>

#ifndef UNLEARN_VERSION
#define UNLEARN_VERSION "0+unknown"
#endif

TORCH_LIBRARY(unlearn, m) {
  m.def("nearest_neighbor(Tensor x, int seed=0) -> Tensor");
  m.def("codec(Tensor y, Tensor z, Tensor? x=None, int seed=0) -> Tensor");
  m.def(
      "codec_select(Tensor y, Tensor features, int max_select, bool stop_early=True, "
      "int seed=0, int max_cache_bytes=1073741824) -> (Tensor, Tensor)");
  m.def(
      "codec_step(Tensor y, Tensor candidates, Tensor selected, int row_begin, int row_end, "
      "int seed=0, Tensor? cache=None) -> (Tensor, Tensor)");
  m.def("perturb(Tensor x, int copies, float sigma, int seed=0) -> Tensor");
  m.def("channel_means(Tensor act, Tensor(a!) out, int column) -> ()");
  m.def("block_solve(Tensor[] blocks, Tensor g, float damping, bool[] low_rank) -> Tensor");
}

static PyModuleDef unlearn_module = {PyModuleDef_HEAD_INIT, "_C",
                                     "Compiled kernels of torch.ops.unlearn", -1, nullptr};

PyMODINIT_FUNC PyInit__C(void) {
  PyObject* m = PyModule_Create(&unlearn_module);
  if (m == nullptr) return nullptr;
  PyModule_AddStringConstant(m, "__version__", UNLEARN_VERSION);
#ifdef WITH_CUDA
  PyModule_AddIntConstant(m, "with_cuda", 1);
#else
  PyModule_AddIntConstant(m, "with_cuda", 0);
#endif
  return m;
}
