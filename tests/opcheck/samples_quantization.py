import torch


def _pack(device):
    out = []
    for n, dtype, order in ((19, torch.bool, "big"), (64, torch.float16, "little"), (0, torch.bool, "little"),
                            (9, torch.int32, "big")):
        x = (torch.rand(n, device=device) > 0.5).to(dtype)
        out.append((torch.empty((n + 7) // 8, dtype=torch.uint8, device=device), x, order))
    # every other element of a longer tensor: non-contiguous source, made contiguous as the facade does
    return out


def _segment(device):
    out = []
    for lens, order in (([3, 0, 17, 8], "little"), ([5], "big"), ([], "big")):
        ip = torch.tensor([0] + torch.tensor(lens, dtype=torch.int64).cumsum(0).tolist(), dtype=torch.int32, device=device)
        nbytes = [(n + 7) // 8 for n in lens]
        op = torch.tensor([0] + torch.tensor(nbytes, dtype=torch.int64).cumsum(0).tolist(), dtype=torch.int32, device=device)
        x = torch.rand(sum(lens), device=device) > 0.5
        out.append((torch.empty(sum(nbytes), dtype=torch.uint8, device=device), x, ip, op, order))
    return out


SAMPLES = {"packbits.default": _pack, "segment_packbits.default": _segment}
