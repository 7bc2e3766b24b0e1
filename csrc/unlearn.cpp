// The Python module unlearn._C. Importing it registers the compiled kernels
// (the TORCH_LIBRARY_IMPL blocks of cpu/, cuda/ and composite/); the op
// schemas are declared in python/unlearn/ops/, one module per op.
#include <Python.h>

#ifndef UNLEARN_VERSION
#define UNLEARN_VERSION "0+unknown"
#endif

static PyModuleDef unlearn_module = {PyModuleDef_HEAD_INIT, "_C", "Compiled kernels of torch.ops.unlearn", -1, nullptr};

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
