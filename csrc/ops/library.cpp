// The one TORCH_LIBRARY(flashinfer, m): the contract shared by Python, torch.export and LibTorch.
// Kernels are attached from Python (flashinfer_ops/_library.py) with Library("flashinfer",
// "FRAGMENT").impl(...); the AOT milestone will add C++ CUDA-key kernels here.
#include <Python.h>

#include "plan.h"
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

// `import flashinfer_ops._C` loads this library (running the registration above); its only Python
// functions are plan()'s host-side schedule helpers (plan.cpp).
static PyMethodDef kMethods[] = {
    {"lpt_deal", flashinfer_ops::lpt_deal, METH_VARARGS,
     "lpt_deal(costs: int32 buffer, n_prog: int) -> bytes (int32 offsets [n_prog + 1], items, one spare 0)"},
    {nullptr, nullptr, 0, nullptr}};

extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, kMethods};
  return PyModule_Create(&module_def);
}
