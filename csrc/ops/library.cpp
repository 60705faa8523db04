// The one TORCH_LIBRARY(flashinfer, m): the contract shared by Python, torch.export and LibTorch.
// Kernels are attached from Python (flashinfer_ops/_library.py) with Library("flashinfer",
// "FRAGMENT").impl(...); the AOT milestone will add C++ CUDA-key kernels here.
#include <Python.h>

#include "schemas.h"

TORCH_LIBRARY(flashinfer, m) {
  flashinfer_ops::register_norm(m);
  flashinfer_ops::register_activation(m);
  flashinfer_ops::register_quantization(m);
  flashinfer_ops::register_rope(m);
  flashinfer_ops::register_page(m);
  flashinfer_ops::register_attention(m);
  flashinfer_ops::register_sampling(m);
}

// `import flashinfer_ops._C` loads this library (running the registration above); it exposes no
// Python functions of its own.
extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
