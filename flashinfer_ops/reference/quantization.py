"""Plain-PyTorch semantics of packbits / segment_packbits (numpy.packbits on a bool cast)."""
import torch

_BIG = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.int32)
_LITTLE = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.int32)


def packbits(x: torch.Tensor, bitorder: str = "big") -> torch.Tensor:
    """x [n] (nonzero = 1) -> uint8 [ceil(n/8)]; "big": element 8i is bit 7 of byte i, "little": bit 0."""
    bits = (x.reshape(-1) != 0).to(torch.int32)
    n = bits.numel()
    padded = torch.zeros((n + 7) // 8 * 8, dtype=torch.int32, device=x.device)
    padded[:n] = bits
    weights = (_BIG if bitorder == "big" else _LITTLE).to(x.device)
    return (padded.view(-1, 8) * weights).sum(-1).to(torch.uint8)


def segment_packbits(x: torch.Tensor, indptr: torch.Tensor, bitorder: str = "big"):
    """Pack each segment x[indptr[i]:indptr[i+1]] separately (each padded to a byte).

    Returns (packed uint8 [sum ceil(len_i/8)], new_indptr int32 [B+1])."""
    ip = indptr.tolist()
    parts = [packbits(x[ip[i]:ip[i + 1]], bitorder) for i in range(len(ip) - 1)]
    lens = torch.tensor([0] + [p.numel() for p in parts], dtype=torch.int64)
    new_indptr = torch.cumsum(lens, 0).to(torch.int32).to(x.device)
    packed = torch.cat(parts) if parts else torch.empty(0, dtype=torch.uint8, device=x.device)
    return packed, new_indptr
