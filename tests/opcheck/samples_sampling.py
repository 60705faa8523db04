import torch

from helpers import strided

DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _rng(device):
    return torch.tensor([1234], dtype=torch.int64, device=device), torch.tensor([8], dtype=torch.int64, device=device)


def _probs(b, v, dtype, device, contiguous=True):
    p = torch.softmax(torch.randn(b, v, device=device) * 2, dim=-1).to(dtype)
    return p if contiguous else strided(p)


def _dists(device):
    """(dist, indices) pairs: every dtype, a strided one, indices, an empty batch."""
    out = [(_probs(3, 50, dt, device), None) for dt in DTYPES]
    out.append((_probs(4, 37, torch.float32, device, contiguous=False), None))
    out.append((_probs(2, 40, torch.float32, device), torch.tensor([1, 1, 0, 1, 0], dtype=torch.int32, device=device)))
    out.append((_probs(0, 16, torch.float32, device), None))
    return out


def _n(p, idx):
    return idx.shape[0] if idx is not None else p.shape[0]


def _samples(device):
    return [(torch.empty(_n(p, i), dtype=torch.int32, device=device), p, i, True, *_rng(device)) for p, i in _dists(device)]


def _logit_samples(device):
    return [(torch.empty(_n(p, i), dtype=torch.int32, device=device), p.float().log().to(p.dtype), i, True, *_rng(device))
            for p, i in _dists(device)]


def _with_param(device, kind):
    out = []
    for n, (p, i) in enumerate(_dists(device)):
        rows = p.shape[0]
        if kind == "top_k":
            arr = torch.randint(1, 10, (rows,), dtype=torch.int32, device=device) if n % 2 else None
            val = 5
        else:
            arr = torch.rand(rows, device=device) * 0.8 + 0.1 if n % 2 else None
            val = 0.5 if kind == "top_p" else 0.2
        out.append((torch.empty(_n(p, i), dtype=torch.int32, device=device), p, i, arr, val, True, *_rng(device)))
    return out


def _joint(device):
    out = []
    for n, (p, i) in enumerate(_dists(device)):
        rows = p.shape[0]
        k_arr = torch.randint(1, 10, (rows,), dtype=torch.int32, device=device) if n % 2 else None
        p_arr = torch.rand(rows, device=device) * 0.8 + 0.1 if n % 3 == 0 else None
        out.append((torch.empty(_n(p, i), dtype=torch.int32, device=device), p, i, k_arr, 6, p_arr, 0.7, True,
                    *_rng(device)))
    return out


def _joint_logits(device):
    """Scalar k (the split path on a GPU), a per-row k (the composed path), k >= vocab."""
    out = []
    for n, ((s, p, i, k_arr, k_val, p_arr, p_val, *rest)) in enumerate(_joint(device)):
        x = (torch.randn(p.shape, device=device) * 3).to(p.dtype)
        if not p.is_contiguous():
            x = strided(x)
        out.append((s, x, i, k_arr, k_val if n != 4 else 100, p_arr, p_val, *rest))
    return out


def _softmax(device):
    out = []
    for n, (p, _) in enumerate(_dists(device)):
        x = torch.randn(p.shape, device=device).to(p.dtype)
        t = torch.rand(p.shape[0], device=device) + 0.5 if n % 2 else None
        out.append((torch.empty(p.shape, dtype=torch.float32, device=device), x, t, 0.8))
    x = torch.randn(3, 20, device=device)
    x[:, ::3] = float("-inf")
    out.append((torch.empty(3, 20, device=device), x, None, 1.0))
    return out


def _filter(device, kind):
    out = []
    for n, (p, _) in enumerate(_dists(device)):
        x = p if kind != "mask" else torch.randn(p.shape, device=device).to(p.dtype)
        rows = p.shape[0]
        if kind == "top_p":
            arr, val = (torch.rand(rows, device=device) * 0.8 + 0.1 if n % 2 else None), 0.6
        else:
            arr, val = (torch.randint(1, 10, (rows,), dtype=torch.int32, device=device) if n % 2 else None), 4
        out.append((torch.empty(p.shape, dtype=torch.float32, device=device), x, arr, val))
    return out


def _spec(device):
    out = []
    for b, n, v, dt in ((3, 2, 30, torch.float32), (2, 3, 17, torch.float16), (1, 1, 8, torch.bfloat16),
                        (0, 2, 10, torch.float32)):
        dp = _probs(b * n, v, dt, device).reshape(b, n, v)
        tp = _probs(b * (n + 1), v, dt, device).reshape(b, n + 1, v)
        ids = torch.randint(0, v, (b, n), dtype=torch.int32, device=device)
        out.append((torch.empty(b, n + 1, dtype=torch.int32, device=device), torch.zeros(b, dtype=torch.int32, device=device),
                    torch.zeros(b, dtype=torch.int32, device=device), dp, ids, tp, True, *_rng(device)))
    return out


SAMPLES = {
    "softmax.default": _softmax,
    "sampling_from_probs.default": _samples,
    "sampling_from_logits.default": _logit_samples,
    "top_p_sampling_from_probs.default": lambda d: _with_param(d, "top_p"),
    "top_k_sampling_from_probs.default": lambda d: _with_param(d, "top_k"),
    "min_p_sampling_from_probs.default": lambda d: _with_param(d, "min_p"),
    "top_k_top_p_sampling_from_probs.default": _joint,
    "top_k_top_p_sampling_from_logits.default": _joint_logits,
    "top_p_renorm_probs.default": lambda d: _filter(d, "top_p"),
    "top_k_renorm_probs.default": lambda d: _filter(d, "top_k"),
    "top_k_mask_logits.default": lambda d: _filter(d, "mask"),
    "chain_speculative_sampling.default": _spec,
}
