// Host-side schedule helpers for plan() (no tensors, no torch): exposed as plain functions of the
// flashinfer_ops._C module, since plan() runs them on every call and Python loops are too slow.
#include <Python.h>

#include <cstdint>
#include <vector>

#include "plan.h"

namespace flashinfer_ops {

// lpt_deal(costs, n_prog) -> bytes: list scheduling of items, in their given order, onto n_prog
// programs: each item goes to the program whose running total of costs is smallest at that point
// (ties: the program that reached that total first; at the start, program 0 first). costs: a
// C-contiguous int32 buffer; items with a negative cost are left out. Returns int32
// [n_prog + 1 + n_listed + 1]: the offsets of each program's items, then each program's item
// indices (ascending), then one spare 0 (so a kernel may read one entry past its last item).
// Costs are integers, so the programs sit in buckets by total: O(items + n_prog + max cost).
PyObject* lpt_deal(PyObject* /*self*/, PyObject* args) {
  Py_buffer buf;
  int n_prog = 0;
  if (!PyArg_ParseTuple(args, "y*i", &buf, &n_prog)) return nullptr;
  if (buf.len % 4 != 0) {
    PyBuffer_Release(&buf);
    PyErr_SetString(PyExc_ValueError, "costs: expected an int32 buffer");
    return nullptr;
  }
  if (n_prog < 1) {
    PyBuffer_Release(&buf);
    PyErr_SetString(PyExc_ValueError, "n_prog: expected >= 1");
    return nullptr;
  }
  const auto* cost = static_cast<const int32_t*>(buf.buf);
  const int64_t n = buf.len / 4;
  int32_t max_cost = 0;
  for (int64_t i = 0; i < n; ++i) max_cost = cost[i] > max_cost ? cost[i] : max_cost;
  // totals waiting in the ring span at most max_cost + 1 consecutive values
  const int64_t ring = static_cast<int64_t>(max_cost) + 1;
  std::vector<std::vector<int32_t>> bucket(ring);
  std::vector<size_t> head(ring, 0);
  for (int32_t p = 0; p < n_prog; ++p) bucket[0].push_back(p);
  std::vector<int32_t> owner(n, -1);
  std::vector<int64_t> count(n_prog + 1, 0);
  int64_t level = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (cost[i] < 0) continue;
    while (head[level % ring] == bucket[level % ring].size()) {
      bucket[level % ring].clear();
      head[level % ring] = 0;
      ++level;
    }
    auto& b = bucket[level % ring];
    const int32_t p = b[head[level % ring]++];
    owner[i] = p;
    ++count[p + 1];
    bucket[(level + cost[i]) % ring].push_back(p);
  }
  PyBuffer_Release(&buf);
  for (int32_t p = 0; p < n_prog; ++p) count[p + 1] += count[p];
  const int64_t listed = count[n_prog];
  std::vector<int32_t> out(n_prog + 1 + listed + 1, 0);
  for (int32_t p = 0; p <= n_prog; ++p) out[p] = static_cast<int32_t>(count[p]);
  std::vector<int64_t> fill(count.begin(), count.end() - 1);
  for (int64_t i = 0; i < n; ++i) {
    if (owner[i] >= 0) out[n_prog + 1 + fill[owner[i]]++] = static_cast<int32_t>(i);
  }
  return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(out.data()),
                                   static_cast<Py_ssize_t>(out.size() * sizeof(int32_t)));
}

}  // namespace flashinfer_ops
