"""A/B of prefill_kernel's persistent grid against the 2-D grid, in one process: the benchmark's
ragged and paged (page 16, staged) cases at the issue-3 shapes, FLASHINFER_PREFILL_PERSISTENT=0
vs =2, alternated twice.

    python scripts/persistent_check.py
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks.attention_prefill import SHAPES, _paged_case, _ragged_case  # noqa: E402
from benchmarks.common import time_device_us  # noqa: E402


def _same_output():
    """max |default - 2-D grid| of ragged and staged paged run() outputs at (16, 1024)."""
    import torch
    import flashinfer

    torch.manual_seed(0)
    b, l, hq, hk, d = 16, 1024, 32, 8, 128
    ind = torch.arange(0, (b + 1) * l, l, dtype=torch.int32)
    q = torch.randn(b * l, hq, d, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(b * l, hk, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    w = flashinfer.BatchPrefillWithRaggedKVCacheWrapper(torch.empty(1 << 20, dtype=torch.uint8, device="cuda"))
    w.plan(ind, ind, hq, hk, d, causal=True, q_data_type=torch.bfloat16)
    outs = []
    for setting in ("0", "2"):
        os.environ["FLASHINFER_PREFILL_PERSISTENT"] = setting
        outs.append(w.run(q, k, v))
    ref = torch.nn.functional.scaled_dot_product_attention(
        q[:l].transpose(0, 1).float(), k[:l].transpose(0, 1).float(), v[:l].transpose(0, 1).float(),
        is_causal=True, enable_gqa=True).transpose(0, 1)
    return {"max_diff_persistent_vs_2d": (outs[0].float() - outs[1].float()).abs().max().item(),
            "nan": bool(outs[1].isnan().any()), "max_err_req0": (outs[1][:l].float() - ref).abs().max().item()}


def main():
    print(json.dumps(_same_output()), flush=True)
    for b, l in SHAPES[::-1]:
        for name, make in (("ragged", _ragged_case), ("paged_p16", _paged_case)):
            _, fns = make(b, l, 2)
            row = {"shape": f"{b}x{l}", "case": name}
            for rep in range(2):
                for setting, key in (("0", "off"), ("2", "persistent")):
                    os.environ["FLASHINFER_PREFILL_PERSISTENT"] = setting
                    row[f"{key}_{rep}"] = round(time_device_us(fns, warmup=3, reps=20), 1)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
