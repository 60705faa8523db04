"""The AMD compile gate compiles what the registry lists (flashinfer_ops._library.VARIANTS); a
variant whose signature misses one of its kernel's parameters (a new constexpr with a default, say)
fails to compile there with only "CompilationError: at 1:0". Caught here in milliseconds."""
import inspect

import flashinfer_ops  # noqa: F401  (fills the registry)
from flashinfer_ops._library import VARIANTS
from flashinfer_ops.configs import FAMILIES


def _params(fn):
    f = getattr(fn, "fn", fn)  # JITFunction / InterpretedFunction wrap the Python function
    return list(inspect.signature(f).parameters)


def test_every_variant_names_every_kernel_parameter():
    assert VARIANTS, "the registry is empty"
    bad = []
    for v in VARIANTS:
        params = _params(v.fn)
        missing = [p for p in params if p not in v.signature]
        extra = [p for p in v.signature if p not in params]
        unset = [p for p, t in v.signature.items() if t == "constexpr" and p not in v.constexprs]
        if missing or extra or unset:
            bad.append((v.kernel, v.variant, missing, extra, unset))
    assert not bad, bad[:5]


def test_variant_names_are_unique():
    names = [(v.kernel, v.variant) for v in VARIANTS]
    assert len(names) == len(set(names))


def test_variant_families_are_known():
    assert all(set(v.families) <= set(FAMILIES) for v in VARIANTS)
