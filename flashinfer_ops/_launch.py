"""Fast eager launches of Triton kernels.

`launch(kernel, grid, *args, **kwargs)` behaves like `kernel[grid](*args, **kwargs)` but, after the
first call of each specialisation, skips Triton's Python binder and cache-key construction and
calls the compiled kernel's C launcher directly. Small decode-time ops are launch-bound (DESIGN.md
§6); the binder is most of their host cost.

The cache key repeats what Triton specialises on, so a cached kernel is only reused where Triton
itself would reuse it: each tensor's dtype and 16-byte alignment; each int's value class (== 1,
divisible by 16, fits in int32) unless the kernel lists it in do_not_specialize; the types of the
other arguments; and every keyword (constexprs and launch options). Triton's normal path is used in
the interpreter, when launch hooks are installed (profilers), or with FLASHINFER_FAST_LAUNCH=0.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Tuple

import torch

_ENABLED = os.environ.get("FLASHINFER_FAST_LAUNCH", "1") != "0"
_CACHE: Dict[Tuple, Tuple[Any, Tuple[str, ...]]] = {}
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def _arg_key(a, specialize: bool):
    if isinstance(a, torch.Tensor):
        return (a.dtype, a.data_ptr() % 16 == 0)
    if type(a) is int:
        if not specialize:
            return (int, _INT32_MIN <= a <= _INT32_MAX)
        return (int, a == 1, a % 16 == 0, _INT32_MIN <= a <= _INT32_MAX)
    if type(a) is float:
        return float
    if type(a) is bool:
        return (bool, a)
    if a is None:
        return None
    return (type(a), a)


def _hook_active(hook) -> bool:
    # Triton <= 3.5 keeps None or a function here; 3.6+ an always-present HookChain that is empty
    # unless a profiler added a hook.
    if hook is None:
        return False
    calls = getattr(hook, "calls", None)
    return True if calls is None else len(calls) > 0


def _hooks_installed() -> bool:
    try:
        from triton import knobs

        return _hook_active(knobs.runtime.launch_enter_hook) or _hook_active(knobs.runtime.launch_exit_hook)
    except Exception:  # older Triton without knobs: always take the normal path
        return True


def launch(kernel, grid, *args, **kwargs):
    """Launch `kernel` (a @triton.jit function) on `grid` with positional runtime args and keyword
    constexprs / launch options."""
    from .configs import interpreting

    if not _ENABLED or interpreting() or not args or not isinstance(args[0], torch.Tensor) or args[0].device.type != "cuda":
        return kernel[grid](*args, **kwargs)
    dns = getattr(kernel, "_fi_dns", None)
    if dns is None:
        names = kernel.arg_names
        skip = {names[i] if isinstance(i, int) else i for i in (getattr(kernel, "do_not_specialize", None) or [])}
        dns = kernel._fi_dns = tuple(n in skip for n in names)
    key = (id(kernel), args[0].device.index, tuple(_arg_key(a, not dns[i]) for i, a in enumerate(args)),
           tuple(sorted(kwargs.items())))
    try:
        hit = _CACHE.get(key)
    except TypeError:  # an unhashable argument: nothing to key on, take Triton's path
        return kernel[grid](*args, **kwargs)
    if hit is None or _hooks_installed():
        compiled = kernel[grid](*args, **kwargs)
        if compiled is not None and hasattr(compiled, "run") and not _hooks_installed():
            names = kernel.arg_names
            tail = tuple(names[len(args):])
            missing = [n for n in tail if n not in kwargs]
            if not missing:
                compiled._init_handles()
                _CACHE[key] = (compiled, tail)
        return compiled
    compiled, tail = hit
    g0 = grid[0]
    g1 = grid[1] if len(grid) > 1 else 1
    g2 = grid[2] if len(grid) > 2 else 1
    stream = torch.cuda.current_stream(args[0].device).cuda_stream
    compiled.run(g0, g1, g2, stream, compiled.function, compiled.packed_metadata, None, None, None,
                 *args, *(kwargs[n] for n in tail))
    return compiled
