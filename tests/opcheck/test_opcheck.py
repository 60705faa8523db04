"""torch.library.opcheck over every op and overload in torch.ops.flashinfer (DESIGN.md §5.1).

On CPU the dispatcher runs the reference kernels (and the ".aiter" overloads through the
recording fake AITER); on a GPU the ".default" overloads run the Triton kernels.
"""
import pytest
import torch

import fake_aiter
import flashinfer  # noqa: F401
from helpers import HAS_GPU
from opcheck.samples import SAMPLES


def all_overloads():
    names = set()
    for schema in torch._C._jit_get_all_schemas():
        if schema.name.startswith("flashinfer::"):
            names.add(schema.name.split("::", 1)[1] + "." + (schema.overload_name or "default"))
    return sorted(names)


OVERLOADS = all_overloads()


def test_every_op_has_samples():
    assert OVERLOADS, "torch.ops.flashinfer has no ops: is flashinfer_ops._C built?"
    missing = [n for n in OVERLOADS if n not in SAMPLES]
    assert not missing, f"ops without opcheck samples: {missing}"
    stale = [n for n in SAMPLES if n not in OVERLOADS]
    assert not stale, f"samples for ops that do not exist: {stale}"


def test_aiter_overloads_share_the_default_argument_list():
    by_op = {}
    for schema in torch._C._jit_get_all_schemas():
        if schema.name.startswith("flashinfer::"):
            by_op.setdefault(schema.name, {})[schema.overload_name or "default"] = schema
    for name, overloads in by_op.items():
        if "aiter" in overloads:
            a = [(x.name, str(x.type)) for x in overloads["aiter"].arguments]
            d = [(x.name, str(x.type)) for x in overloads["default"].arguments]
            assert a == d, f"{name}.aiter arguments differ from .default"


DEVICES = ["cpu"] + (["cuda"] if HAS_GPU else [])


@pytest.fixture
def aiter_loaded():
    import sys

    saved = sys.modules.get("aiter")
    fake_aiter.install()
    from flashinfer_ops.aiter import load_aiter_overloads

    assert load_aiter_overloads()
    yield
    if saved is None:
        for k in [k for k in sys.modules if k == "aiter" or k.startswith("aiter.")]:
            del sys.modules[k]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", OVERLOADS)
def test_opcheck(name, device, request):
    if name not in SAMPLES:
        pytest.fail(f"{name} has no samples")
    if name.endswith(".aiter"):
        if device == "cuda":
            pytest.skip(".aiter needs AITER on an AMD GPU; its CPU adapter test uses the fake AITER")
        request.getfixturevalue("aiter_loaded")
    op_name, overload = name.split(".")
    op = getattr(getattr(torch.ops.flashinfer, op_name), overload)
    samples = SAMPLES[name](device)
    assert samples, f"{name}: empty sample list"
    for args in samples:
        torch.library.opcheck(op, args)
