// Host-side schedule helpers (csrc/ops/plan.cpp), module functions of flashinfer_ops._C.
#pragma once
#include <Python.h>

namespace flashinfer_ops {
PyObject* lpt_deal(PyObject* self, PyObject* args);
}  // namespace flashinfer_ops
