import torch

from helpers import strided


def _act(device):
    out = []
    for dtype in (torch.float16, torch.bfloat16):
        for shape in ((4, 128), (2, 3, 40), (0, 64)):
            x = torch.randn(shape, dtype=dtype, device=device)
            out.append((torch.empty(shape[:-1] + (shape[-1] // 2,), dtype=dtype, device=device), x))
    x = strided(torch.randn(3, 96, dtype=torch.bfloat16, device=device))
    out.append((torch.empty(3, 48, dtype=torch.bfloat16, device=device), x))
    return out


SAMPLES = {"silu_and_mul.default": _act, "gelu_and_mul.default": _act, "gelu_tanh_and_mul.default": _act}
