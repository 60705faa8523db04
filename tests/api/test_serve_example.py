"""examples/serve.py end to end: continuous batching over the paged cache, checked against a
plain-PyTorch model. CPU: the tiny config on the reference kernels (what CI runs). GPU: the
default size with CUDA-graph decode steps."""
import importlib.util
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _serve():
    spec = importlib.util.spec_from_file_location("serve_example", os.path.join(ROOT, "examples", "serve.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules["serve_example"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_tiny_on_cpu(capsys):
    assert _serve().main(["--tiny", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "check: PASSED" in out and "served 6 requests" in out


def test_check_catches_a_wrong_engine(capsys):
    """The check must fail when the engine's logits are wrong (here: a corrupted KV cache)."""
    serve = _serve()
    cfg = serve.TINY
    eng = serve.Engine(cfg, "cpu", torch.bfloat16, 40, 16, 4, False, False, 50, 0.9, 0)
    real_decode = eng.decode

    def corrupting_decode(reqs):
        for kc in eng.model.k_caches():
            kc.mul_(0.5)
        real_decode(reqs)

    eng.decode = corrupting_decode
    finished = eng.serve(serve.make_requests(3, cfg.vocab, (4, 10), (3, 4), 0))
    assert not serve.check(cfg, eng.weights, finished, 0.05)


def test_compiled_model_matches_on_cpu(capsys):
    """torch.compile(dynamic=True) of the whole model (Inductor on the CPU)."""
    assert _serve().main(["--tiny", "--device", "cpu", "--compile"]) == 0
    assert "check: PASSED" in capsys.readouterr().out


@pytest.mark.gpu
def test_default_size_with_cuda_graphs(capsys):
    assert _serve().main([]) == 0
    out = capsys.readouterr().out
    assert "CUDA graphs" in out and "check: PASSED" in out
