"""A/B of prefill launch forms in one process on the benchmark's ragged and paged (page 16,
staged) cases at the issue-3 shapes. Each setting "D:P" sets FLASHINFER_PREFILL_DEAL=D (1: deal
the pairs to the persistent grid; 0: the 2-D grid; "-": plan()'s default) and
FLASHINFER_PREFILL_STAGE_PDL=P (the dense launch a programmatic dependent of the staged copy), and
"D:P:L" also FLASHINFER_PREFILL_LEAN=L (0: dealt pairs run prefill_kernel PERSISTENT). The
deal is made at plan(), so each setting plans its own case. Settings are timed in turn, twice
over, and the outputs checked against the first setting's at (16, 1024).

    python scripts/persistent_check.py [D:P[:L] ...]      (default: 0:0 -:0 1:0 -:1)
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks.attention_prefill import SHAPES, _paged_case, _ragged_case  # noqa: E402
from benchmarks.common import time_device_us  # noqa: E402


def _set(setting):
    d, p, *rest = setting.split(":")
    os.environ["FLASHINFER_PREFILL_LEAN"] = rest[0] if rest else "1"
    if d == "-":
        os.environ.pop("FLASHINFER_PREFILL_DEAL", None)
    else:
        os.environ["FLASHINFER_PREFILL_DEAL"] = d
    os.environ["FLASHINFER_PREFILL_STAGE_PDL"] = p


def _same_output(settings):
    """Per setting: max |ragged - first setting's ragged|, max |staged paged - ragged| (the paged
    cache holds the same K / V in shuffled pages), NaN anywhere, and the ragged output's max error
    on request 0 against float32 SDPA, at (16, 1024)."""
    import torch
    import flashinfer

    torch.manual_seed(0)
    b, l, hq, hk, d, page = 16, 1024, 32, 8, 128, 16
    ind = torch.arange(0, (b + 1) * l, l, dtype=torch.int32)
    q = torch.randn(b * l, hq, d, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(b * l, hk, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    n_pages = b * l // page
    perm = torch.randperm(n_pages)
    kc = torch.empty(n_pages, page, hk, d, device="cuda", dtype=torch.bfloat16)
    vc = torch.empty_like(kc)
    kc[perm] = k.view(n_pages, page, hk, d)
    vc[perm] = v.view(n_pages, page, hk, d)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q[:l].transpose(0, 1).float(), k[:l].transpose(0, 1).float(), v[:l].transpose(0, 1).float(),
        is_causal=True, enable_gqa=True).transpose(0, 1)
    res, first = {}, None
    for s in settings:
        _set(s)
        rag = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(torch.empty(1 << 20, dtype=torch.uint8, device="cuda"))
        rag.plan(ind, ind, hq, hk, d, causal=True, q_data_type=torch.bfloat16)
        pag = flashinfer.BatchPrefillWithPagedKVCacheWrapper(torch.empty(256 << 20, dtype=torch.uint8, device="cuda"))
        pag.plan(ind, torch.arange(0, n_pages + 1, l // page, dtype=torch.int32), perm.to(torch.int32),
                 torch.full((b,), page, dtype=torch.int32), hq, hk, d, page, causal=True, q_data_type=torch.bfloat16)
        r = rag.run(q, k, v)
        p = torch.full_like(q, float("nan"))
        pag.run(q, (kc, vc), out=p)
        first = r if first is None else first
        res[s] = {"ragged_vs_first": (r.float() - first.float()).abs().max().item(),
                  "paged_vs_ragged": (p.float() - r.float()).abs().max().item(),
                  "nan": bool(r.isnan().any() or p.isnan().any()),
                  "ragged_err_req0": (r[:l].float() - ref).abs().max().item(),
                  "dealt": [rag._deal is not None, pag._deal is not None]}
    return res


def main():
    settings = sys.argv[1:] or ["0:0", "-:0", "1:0", "-:1"]
    print(json.dumps(_same_output(settings)), flush=True)
    for b, l in SHAPES[::-1]:
        for name, make in (("ragged", _ragged_case), ("paged_p16", _paged_case)):
            own = [s for s in settings if name == "paged_p16" or s.split(":")[1] == "0"]
            fns = {}
            for s in own:
                _set(s)
                fns[s] = make(b, l, 2)[1]
            row = {"shape": f"{b}x{l}", "case": name}
            for rep in range(2):
                for s in own:
                    _set(s)
                    row[f"{s}_{rep}"] = round(time_device_us(fns[s], warmup=3, reps=20), 1)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
