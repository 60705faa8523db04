"""Fast eager launches of Triton kernels.

`launch(kernel, grid, *args, **kwargs)` behaves like `kernel[grid](*args, **kwargs)` but, after the
first call of each specialisation, skips Triton's Python binder and cache-key construction and
calls the compiled kernel's C launcher directly. Small decode-time ops are launch-bound (DESIGN.md
§6); the binder is most of their host cost.

The cache key repeats what Triton specialises on, so a cached kernel is only reused where Triton
itself would reuse it: each tensor's dtype and 16-byte alignment; each int's value class (== 1,
divisible by 16, fits in int32) unless the kernel lists it in do_not_specialize; each host tensor
descriptor's element type, block shape and padding (with FLASHINFER_FAST_LAUNCH_DESCRIPTORS=1;
otherwise a launch with descriptors takes Triton's path); the types of the other arguments; and
every keyword (constexprs and launch options). Triton's normal path is used in
the interpreter, when launch hooks are installed (profilers), or with FLASHINFER_FAST_LAUNCH=0.
"""
from __future__ import annotations

import inspect
import os
from typing import Any, Dict, Tuple

import torch

_ENABLED = os.environ.get("FLASHINFER_FAST_LAUNCH", "1") != "0"
_DESC_TYPE = None  # host tensor descriptors are keyed (cached) only with FLASHINFER_FAST_LAUNCH_DESCRIPTORS=1
if os.environ.get("FLASHINFER_FAST_LAUNCH_DESCRIPTORS", "0") == "1":
    # opt-in until its GPU test (tests/api/test_fast_launch.py) has passed on the H100
    try:
        from triton.tools.tensor_descriptor import TensorDescriptor as _DESC_TYPE
    except ImportError:  # Triton without host tensor descriptors
        pass
_CACHE: Dict[Tuple, Tuple[Any, Tuple[str, ...]]] = {}
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def _hook_active(hook) -> bool:
    # Triton <= 3.5 keeps None or a function here; 3.6+ an always-present HookChain that is empty
    # unless a profiler added a hook.
    if hook is None:
        return False
    calls = getattr(hook, "calls", None)
    return True if calls is None else len(calls) > 0


_RUNTIME_KNOBS = []


def _hooks_installed() -> bool:
    if not _RUNTIME_KNOBS:
        try:
            from triton import knobs

            _RUNTIME_KNOBS.append(knobs.runtime)
        except Exception:  # older Triton without knobs: always take the normal path
            _RUNTIME_KNOBS.append(None)
    rt = _RUNTIME_KNOBS[0]
    return rt is None or _hook_active(rt.launch_enter_hook) or _hook_active(rt.launch_exit_hook)


def _kernel_meta(kernel):
    """(per positional arg: is it specialised by Triton?, argument names, {name: declared default}),
    cached on the kernel."""
    meta = kernel.__dict__.get("_fi_meta")
    if meta is None:
        names = tuple(kernel.arg_names)
        skip = {names[i] if isinstance(i, int) else i for i in (getattr(kernel, "do_not_specialize", None) or [])}
        defaults = {p.name: p.default for p in inspect.signature(kernel.fn).parameters.values()
                    if p.default is not inspect.Parameter.empty}
        meta = kernel._fi_meta = (tuple(n not in skip for n in names), names, defaults)
    return meta


def _trailing(kernel, n_args: int, kwargs):
    """Values of the kernel's parameters after the first n_args (passed as keywords, else their
    declared defaults) in declaration order, or None where one has neither."""
    _, names, defaults = _kernel_meta(kernel)
    out = []
    for name in names[n_args:]:
        if name in kwargs:
            out.append(kwargs[name])
        elif name in defaults:
            out.append(defaults[name])
        else:
            return None
    return out


_STATE = {}


def _use_fast_path() -> bool:
    use = _STATE.get("use")
    if use is None:
        from .configs import interpreting

        # TRITON_INTERPRET is read when kernels are defined, so it is fixed for the process.
        use = _STATE["use"] = _ENABLED and not interpreting() and hasattr(torch._C, "_cuda_getCurrentRawStream")
    return use


def launch(kernel, grid, *args, **kwargs):
    """Launch `kernel` (a @triton.jit function) on `grid` with positional runtime args and keyword
    constexprs / launch options."""
    a0 = args[0] if args else None
    if not (_use_fast_path() and isinstance(a0, torch.Tensor) and a0.is_cuda):
        return kernel[grid](*args, **kwargs)
    specialised = _kernel_meta(kernel)[0]
    key = [id(kernel), a0.get_device()]
    for a, spec in zip(args, specialised):
        t = type(a)
        if t is torch.Tensor or isinstance(a, torch.Tensor):
            key.append((a.dtype, a.data_ptr() & 15 == 0))
        elif t is int:
            fits32 = _INT32_MIN <= a <= _INT32_MAX
            key.append((a == 1, a & 15 == 0, fits32) if spec else fits32)
        elif t is float:
            key.append(0.5)
        elif t is _DESC_TYPE:
            # Triton specialises a host descriptor on its element type and block shape (the
            # launcher builds the copy-engine descriptor from base, shape and strides each call)
            key.append((a.base.dtype, tuple(a.block_shape), a.padding))
        else:
            key.append((t, a))
    key.append(tuple(kwargs.items()))
    try:
        hit = _CACHE.get(tuple(key))
    except TypeError:  # an unhashable argument: nothing to key on, take Triton's path
        return kernel[grid](*args, **kwargs)
    if hit is None or _hooks_installed():
        compiled = kernel[grid](*args, **kwargs)
        if compiled is not None and hasattr(compiled, "run") and not _hooks_installed():
            tail = _trailing(kernel, len(args), kwargs)
            if tail is not None:
                compiled._init_handles()
                _CACHE[tuple(key)] = (compiled, tail)
        return compiled
    compiled, tail = hit
    _run(compiled, grid, key[1], args, tail)
    return compiled


def _run(compiled, grid, device: int, args, trailing):
    """Call a compiled kernel's C launcher on the current stream of `device`: positional args,
    then the values of the kernel's remaining (keyword) parameters in declaration order."""
    n = len(grid)
    compiled.run(grid[0], grid[1] if n > 1 else 1, grid[2] if n > 2 else 1,
                 torch._C._cuda_getCurrentRawStream(device), compiled.function, compiled.packed_metadata,
                 None, None, None, *args, *trailing)


def repeat_launcher(kernel, **kwargs):
    """A function (grid, *args) launching `kernel` with these keywords: its first call as launch()
    does, later calls straight through that call's compiled kernel, with no cache key (most of a
    launch's host cost when a kernel has many arguments). The caller keeps every later call's
    arguments in the first call's specialisation class (types, tensor dtypes and 16-byte
    alignment, int classes), e.g. the same launch over another aligned slice of one schedule.
    Where launch() would not take its fast path (interpreter, hooks, CPU tensors) every call goes
    through launch()."""
    compiled = None
    trailing = None

    def go(grid, *args):
        nonlocal compiled, trailing
        a0 = args[0] if args else None
        if (compiled is None or not hasattr(compiled, "run") or not _use_fast_path() or _hooks_installed()
                or not (isinstance(a0, torch.Tensor) and a0.is_cuda)):
            compiled = launch(kernel, grid, *args, **kwargs)
            trailing = None
            return
        if trailing is None:
            trailing = _trailing(kernel, len(args), kwargs)
        if trailing is None:
            compiled = launch(kernel, grid, *args, **kwargs)
            return
        _run(compiled, grid, a0.get_device(), args, trailing)
    return go
