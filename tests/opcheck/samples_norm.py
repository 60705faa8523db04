import torch

from helpers import strided


def _rms(device):
    out = []
    for dtype in (torch.float16, torch.bfloat16):
        for shape in ((3, 64), (2, 3, 40), (0, 32)):
            x = torch.randn(shape, dtype=dtype, device=device)
            out.append((torch.empty_like(x), x, torch.randn(shape[-1], dtype=dtype, device=device), 1e-6))
    x = strided(torch.randn(5, 48, dtype=torch.bfloat16, device=device))
    out.append((torch.empty(5, 48, dtype=torch.bfloat16, device=device), x,
                torch.randn(48, dtype=torch.bfloat16, device=device), 1e-5))
    return out


def _fused(device):
    out = []
    for dtype in (torch.float16, torch.bfloat16):
        for shape in ((4, 64), (2, 2, 32), (0, 16)):
            out.append((torch.randn(shape, dtype=dtype, device=device), torch.randn(shape, dtype=dtype, device=device),
                        torch.randn(shape[-1], dtype=dtype, device=device), 1e-6))
    out.append((strided(torch.randn(3, 40, dtype=torch.float16, device=device)),
                strided(torch.randn(3, 40, dtype=torch.float16, device=device)),
                torch.randn(40, dtype=torch.float16, device=device), 1e-6))
    return out


def _layernorm(device):
    out = []
    for dtype in (torch.float16, torch.bfloat16):
        for shape in ((3, 100), (0, 8)):
            x = torch.randn(shape, dtype=dtype, device=device)
            out.append((torch.empty_like(x), x, torch.randn(shape[-1], device=device),
                        torch.randn(shape[-1], device=device), 1e-5))
    x = strided(torch.randn(4, 64, dtype=torch.bfloat16, device=device))
    out.append((torch.empty(4, 64, dtype=torch.bfloat16, device=device), x, torch.randn(64, device=device),
                torch.randn(64, device=device), 1e-5))
    return out


def _rms_2d(device):
    return [s for s in _rms(device) if s[1].dim() == 2]


SAMPLES = {
    "rmsnorm.default": _rms,
    "rmsnorm.aiter": _rms_2d,
    "gemma_rmsnorm.default": _rms,
    "fused_add_rmsnorm.default": _fused,
    "gemma_fused_add_rmsnorm.default": _fused,
    "layernorm.default": _layernorm,
}
