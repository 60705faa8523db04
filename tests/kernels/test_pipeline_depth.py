"""Structure of the shipped sm90 attention kernels, checked by compiling them on the CPU
(flashinfer_ops.tools.pipeline_report): the two properties the H200 speed rests on.

- decode: page ids loaded a tile ahead keep two K/V tiles in flight at num_stages 3 (a page-table
  load inside the loop took a stage: one tile, 78.7% of the copy ceiling instead of 99.7%).
- paged prefill with a power-of-two page size addresses rows without run-time divisions.
- paged prefill keeps as many K/V tiles in flight as ragged, and its pipelined loop waits on no
  page-table load (with the register page-id prefetch at 3 stages, the pipeliner put the page-id
  ld.global of a tile right before that tile's cp.async: a global-load latency every tile).
- fp8 decode converts V before the MMA operand gather (V_ASM): no byte-wise shared-memory reads.
- dense prefill on sm90 reads K / V through tensor descriptors (bulk tensor copies).
"""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton.backends.nvidia")

from flashinfer_ops.configs.attention import decode as dcfg  # noqa: E402
from flashinfer_ops.configs.attention import prefill as pcfg  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _fresh_process_json(args):
    """Run python `args` in a fresh process without TRITON_INTERPRET (the test session may
    interpret) and return the JSON of its last output line."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.join(ROOT, "python"), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(kernel, variant, overrides):
    """The pipeline report tool's JSON for one kernel variant (_fresh_process_json)."""
    return _fresh_process_json(["-m", "flashinfer_ops.tools.pipeline_report", kernel, variant, *overrides, "--json"])


def _decode_overrides():
    c = dcfg.decode_config("sm90", 128, False, False)
    return [f"BLOCK_N={dcfg.block_n('sm90', 128, False, False)}", f"num_warps={c.num_warps}",
            f"num_stages={c.num_stages}", f"PAGES_AHEAD={dcfg.pages_ahead('sm90', False)}"]


def test_decode_keeps_two_kv_tiles_in_flight():
    r = report("attention_decode.decode_kernel", "bf16_bfloat16_d128", _decode_overrides())
    kv = [b for b in r["buffers"] if b.endswith("x128xbf16")]
    assert len(kv) == 2 and all(b.startswith("2x") for b in kv), r["buffers"]
    assert r["cp_async"] > 0


def test_decode_without_pages_ahead_is_one_tile_deep():
    """The control: the same kernel with the page-table load in the loop (why PAGES_AHEAD exists)."""
    r = report("attention_decode.decode_kernel", "bf16_bfloat16_d128", _decode_overrides() + ["PAGES_AHEAD=False"])
    kv = [b for b in r["buffers"] if b.endswith("x128xbf16")]
    assert kv and all(b.startswith("1x") for b in kv), r["buffers"]


def test_paged_prefill_pow2_has_no_extra_divisions():
    tile = ["BLOCK_M=128", "BLOCK_N=64", "num_warps=8", "num_stages=3"]
    dense = report("attention.prefill_kernel", "bf16_kvbf16_d128x128_dense", tile)
    pow2 = report("attention.prefill_kernel", "bf16_kvbf16_d128x128_paged_pow2", tile)
    general = report("attention.prefill_kernel", "bf16_kvbf16_d128x128_paged", tile)
    assert pow2["div"] <= dense["div"] < general["div"], (dense["div"], pow2["div"], general["div"])


def _prefill_overrides(paged):
    # the table itself: prefill_config() answers the interpreter's tile when the session interprets
    c = pcfg._lookup("sm90", 128, 128, False, False, paged, False, "")
    return [f"BLOCK_M={c.block_m}", f"BLOCK_N={c.block_n}", f"num_warps={c.launch.num_warps}",
            f"num_stages={c.launch.num_stages}"] + (["PREFETCH_PAGES=True"] if paged else [])


PAGED_ROWS = "bf16_kvbf16_d128x128_paged_pow2_rows"  # what a cache with K, V strides alike launches


def _kv_buffers(r):
    return [b for b in r["buffers"] if b.endswith("x128xbf16")]


def test_paged_prefill_pipeline_matches_ragged():
    """The table's paged entry keeps as many K/V tiles in flight as ragged, without spilling."""
    ragged = report("attention.prefill_kernel", "bf16_kvbf16_d128x128_dense", _prefill_overrides(False))
    paged = report("attention.prefill_kernel", PAGED_ROWS, _prefill_overrides(True))
    depth = {b.split("x")[0] for b in _kv_buffers(ragged)}
    assert len(_kv_buffers(paged)) == 2 and {b.split("x")[0] for b in _kv_buffers(paged)} == depth, (
        ragged["buffers"], paged["buffers"])
    assert ragged["loop_ld_global"] == 0, ragged
    assert paged.get("stack_local", 0) == 0, paged


def test_paged_prefill_page_ids_as_copies_at_five_stages():
    """Without the register prefetch, 5 stages pipeline the page ids as async copies (no plain load
    in the loop); with it (the shipped entry, measured faster on the H200) the loop waits on one."""
    tile = ["BLOCK_M=128", "BLOCK_N=64", "num_warps=8"]
    copies = report("attention.prefill_kernel", PAGED_ROWS, tile + ["num_stages=5", "PREFETCH_PAGES=False"])
    assert copies["loop_ld_global"] == 0 and any(b.endswith("xi32") for b in copies["buffers"]), copies
    regs = report("attention.prefill_kernel", PAGED_ROWS, tile + ["num_stages=3", "PREFETCH_PAGES=True"])
    assert regs["loop_ld_global"] > 0, regs


def test_paged_prefill_shared_rows_shorten_the_loop():
    """SHARED_ROWS: V reuses K's row offsets, the in-page offset is 32-bit."""
    rows = report("attention.prefill_kernel", PAGED_ROWS, _prefill_overrides(True))
    plain = report("attention.prefill_kernel", "bf16_kvbf16_d128x128_paged_pow2", _prefill_overrides(True))
    assert rows["loop_instructions"] < plain["loop_instructions"], (rows, plain)


def _fp8_decode_overrides():
    c = dcfg.decode_config("sm90", 128, True, False)
    return ["sig:k_ptr=*fp8e4nv", "sig:v_ptr=*fp8e4nv", "KV_FMT=5", f"BLOCK_N={dcfg.block_n('sm90', 128, True, False)}",
            f"num_warps={c.num_warps}", f"num_stages={c.num_stages}", f"PAGES_AHEAD={dcfg.pages_ahead('sm90', False)}"]


def test_fp8_decode_v_asm_gathers_no_bytes():
    """The shipped sm90 fp8 decode (V_ASM) reaches V's MMA operand through ldmatrix on fp16; the
    control (Triton's own conversion) gathers V's token pairs one byte at a time."""
    assert dcfg.v_asm(True, False)
    on = report("attention_decode.decode_kernel", "bf16_float8_e4m3fn_d128", _fp8_decode_overrides() + ["V_ASM=True"])
    off = report("attention_decode.decode_kernel", "bf16_float8_e4m3fn_d128", _fp8_decode_overrides() + ["V_ASM=False"])
    assert on["ld_shared_b8"] == 0 and on["ldmatrix"] > 0, on
    assert off["ld_shared_b8"] > 0, off
    assert on["loop_instructions"] < off["loop_instructions"], (on, off)


def test_dense_prefill_reads_kv_by_tensor_descriptor():
    r = report("attention.prefill_kernel", "bf16_kvbf16_d128x128_dense_tma", [])
    assert r["cp_async_bulk_tensor"] > 0, r


_INPLACE = """
import json, sys
from flashinfer_ops.kernels.attention.prefill_paged_sm90 import compile_for_sm90
from flashinfer_ops.tools.pipeline_report import _resources
rows = []
for page, hnd, lse in ((16, False, False), (16, True, True), (32, False, True), (64, True, False)):
    c = compile_for_sm90(page, hnd, lse)
    ptx = c.asm["ptx"]
    rows.append(dict(page=page, shared=c.metadata.shared, wgmma=ptx.count("wgmma.mma_async"),
                     copies=ptx.count("cp.async.bulk.tensor.4d"), **_resources(c.asm["cubin"])))
print(json.dumps(rows))
"""


def test_inplace_paged_prefill_compiles_lean_for_sm90():
    """The Gluon in-place paged kernel: one Q.K^T and one P.V a tile (16 wgmma: 8 + 8 over two D
    halves, not one a page), four 4-D descriptor copies a page (K / V x D halves), no spills, and
    shared memory for two programs an SM (deal_grid's DEAL_PER_SM)."""
    pytest.importorskip("triton.experimental.gluon.language.nvidia.hopper")
    for r in _fresh_process_json(["-c", _INPLACE]):
        pieces = 64 // r["page"]
        assert r["wgmma"] == 16, r
        assert r["copies"] == 4 * pieces * 3, r  # prologue (2 stages) + loop (1)
        assert r["stack_local"] == 0 and r["regs"] <= 255, r
        assert 2 * (r["shared"] + 1024) <= 228 * 1024, r


_INPLACE_WS = """
import json, re
from flashinfer_ops.kernels.attention.prefill_paged_sm90 import compile_for_sm90
from flashinfer_ops.tools.pipeline_report import _resources
rows = []
for form, page, hnd, lse in (("ws", 16, False, True), ("ws_overlap", 16, True, False), ("ws", 64, False, False),
                             ("ws_overlap", 32, True, True)):
    c = compile_for_sm90(page, hnd, lse, form=form)
    ptx = c.asm["ptx"]
    # the copy partition's loop: from the first copy back to its loop's label, on to the last copy
    first, last = ptx.index("cp.async.bulk.tensor.4d"), ptx.rindex("cp.async.bulk.tensor.4d")
    rows.append(dict(form=form, page=page, shared=c.metadata.shared, wgmma=ptx.count("wgmma.mma_async"),
                     copies=ptx.count("cp.async.bulk.tensor.4d"), bars_between_copies=len(re.findall(
                         r"bar(rier)?[.]sync", ptx[first:last])),
                     setmaxnreg=sorted(set(int(n) for n in re.findall(r"setmaxnreg[.][a-z]+[.]sync[.]aligned[.]u32[ \t]+([0-9]+)", ptx))),
                     **_resources(c.asm["cubin"])))
print(json.dumps(rows))
"""


def test_inplace_paged_prefill_ws_keeps_two_programs_an_sm():
    """The warp-specialized in-place forms: a copy warp issues a pair's two Q copies and
    a tile's 4 copies a page with no barrier between them (the plain form's copies each wait at a
    CTA-wide bar.sync), the
    attending warpgroup runs 16 wgmma a tile (32 for ws_overlap: its first tile is peeled), the
    registers split as COPY_WARP_REGS for the copy warp and the rest for the warpgroup under the
    launch cap WS_MAXNREG (8 warps x 128: two programs an SM), no spills, and shared memory for
    two programs an SM."""
    pytest.importorskip("triton.experimental.gluon.language.nvidia.hopper")
    from flashinfer_ops.kernels.attention.prefill_paged_sm90 import COPY_WARP_REGS, WS_MAXNREG

    COPY_WARP_REGS = int(COPY_WARP_REGS)
    for r in _fresh_process_json(["-c", _INPLACE_WS]):
        # one tile's copies, in the copy loop only, and Q's two halves
        assert r["copies"] == 4 * 64 // r["page"] + 2, r
        assert r["bars_between_copies"] == 0, r
        assert r["wgmma"] == (32 if r["form"] == "ws_overlap" else 16), r
        assert {COPY_WARP_REGS, (8 * WS_MAXNREG - 4 * COPY_WARP_REGS) // 4} <= set(r["setmaxnreg"]), r
        assert r["stack_local"] == 0 and r["regs"] <= WS_MAXNREG, r
        assert 2 * (r["shared"] + 1024) <= 228 * 1024, r
