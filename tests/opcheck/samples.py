"""The one sample table for tests/opcheck: op overload name -> sample factory.

Each domain lists its samples in tests/opcheck/samples_<domain>.py as
    SAMPLES = {"rmsnorm.default": factory, ...}
where factory(device) returns a list of argument tuples. Between them the samples must cover at
least one non-contiguous input, one empty batch and each supported dtype. test_opcheck fails for
any op or overload in torch.ops.flashinfer that has no entry here.
"""
import glob
import importlib.util
import os

SAMPLES = {}
for _path in sorted(glob.glob(os.path.join(os.path.dirname(__file__), "samples_*.py"))):
    _spec = importlib.util.spec_from_file_location(os.path.basename(_path)[:-3], _path)
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    for _k, _v in _mod.SAMPLES.items():
        assert _k not in SAMPLES, f"{_k} listed twice"
        SAMPLES[_k] = _v
