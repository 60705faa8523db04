"""CUDA-key (Triton) and CPU-key (reference) implementations of the attention-state merge ops."""
import torch
import triton

from ..._launch import launch
from ..._library import TRITON_DTYPE, KernelVariant, register_op, register_variant
from ...configs import arch_family
from ...configs.attention import decode as cfg
from ...fake.attention import merge as contract
from ...kernels.attention.merge import merge_states_kernel
from ...reference import attention as ref


def _s_ok(name, s):
    if s.dim() and s.shape[-1] > 1 and s.stride(-1) != 1:
        raise ValueError(f"{name}: the head dimension must be contiguous, got strides {tuple(s.stride())}")


def _launch(vo, so, v, s, vb, sb, mask, n_states, two):
    seq, h, d = vo.shape
    if seq == 0 or h == 0 or d == 0:
        return
    for name, t in (("s_out", so), ("s", s), ("s_b", sb)):
        _s_ok(name, t)
    block_d = cfg.merge_block_d(d)
    fam = arch_family(vo.device)
    sv = (v.stride(0), v.stride(1) if not two else 0, v.stride(-2))
    launch(merge_states_kernel, (seq, triton.cdiv(h, cfg.MERGE_BLOCK_H)),
        vo, so, v, s, vb, sb, mask if mask is not None else so,
        n_states, h, d,
        vo.stride(0), vo.stride(1), so.stride(0), sv[0], sv[1], sv[2], s.stride(0), s.stride(1) if not two else 0,
        vb.stride(0), vb.stride(1), sb.stride(0),
        TWO=two, HAS_MASK=mask is not None, BLOCK_H=cfg.MERGE_BLOCK_H, BLOCK_D=block_d,
        **cfg.merge_config(fam, block_d).options(fam),
    )


def merge_state_cuda(v_out, s_out, v_a, s_a, v_b, s_b):
    contract.check_merge_state(v_out, s_out, v_a, s_a, v_b, s_b)
    _launch(v_out, s_out, v_a, s_a, v_b, s_b, None, 2, True)


def merge_state_in_place_cuda(v, s, v_other, s_other, mask):
    contract.check_merge_state_in_place(v, s, v_other, s_other, mask)
    m = mask.view(torch.uint8) if mask is not None and mask.dtype == torch.bool else mask
    _launch(v, s, v, s, v_other, s_other, m, 2, True)


def merge_states_cuda(v_out, s_out, v, s):
    contract.check_merge_states(v_out, s_out, v, s)
    _launch(v_out, s_out, v, s, v_out, s_out, None, v.shape[1], False)


def merge_state_cpu(v_out, s_out, v_a, s_a, v_b, s_b):
    contract.check_merge_state(v_out, s_out, v_a, s_a, v_b, s_b)
    vo, so = ref.merge_states(torch.stack([v_a, v_b], 1), torch.stack([s_a, s_b], 1))
    v_out.copy_(vo)
    s_out.copy_(so)


def merge_state_in_place_cpu(v, s, v_other, s_other, mask):
    contract.check_merge_state_in_place(v, s, v_other, s_other, mask)
    vo, so = ref.merge_states(torch.stack([v, v_other], 1), torch.stack([s, s_other], 1))
    if mask is not None:
        keep = mask.to(torch.bool)
        vo = torch.where(keep[:, None, None], vo.to(v.dtype), v)
        so = torch.where(keep[:, None], so, s)
    v.copy_(vo)
    s.copy_(so)


def merge_states_cpu(v_out, s_out, v, s):
    contract.check_merge_states(v_out, s_out, v, s)
    vo, so = ref.merge_states(v, s)
    v_out.copy_(vo)
    s_out.copy_(so)


register_op("merge_state", cuda=merge_state_cuda, cpu=merge_state_cpu, fake=contract.merge_state_fake)
register_op("merge_state_in_place", cuda=merge_state_in_place_cuda, cpu=merge_state_in_place_cpu,
            fake=contract.merge_state_in_place_fake)
register_op("merge_states", cuda=merge_states_cuda, cpu=merge_states_cpu, fake=contract.merge_states_fake)


def _register_variants():
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        dt = TRITON_DTYPE[dtype]
        for block_d in cfg.MERGE_BLOCK_DS:
            for two, has_mask in ((False, False), (True, False), (True, True)):
                sig = {"vo_ptr": f"*{dt}", "so_ptr": "*fp32", "v_ptr": f"*{dt}", "s_ptr": "*fp32", "vb_ptr": f"*{dt}",
                       "sb_ptr": "*fp32", "mask_ptr": "*u8" if has_mask else "*fp32"}
                for name in ("n_states", "num_heads", "head_dim", "s_vo_r", "s_vo_h", "s_so_r", "s_v_r", "s_v_n",
                             "s_v_h", "s_s_r", "s_s_n", "s_vb_r", "s_vb_h", "s_sb_r"):
                    sig[name] = "i32"
                ce = dict(TWO=two, HAS_MASK=has_mask, BLOCK_H=cfg.MERGE_BLOCK_H, BLOCK_D=block_d)
                sig.update({k: "constexpr" for k in ce})
                mode = "n" if not two else ("two_mask" if has_mask else "two")
                register_variant(KernelVariant(
                    kernel="attention_merge.merge_states_kernel", variant=f"{dt}_{mode}_d{block_d}",
                    fn=merge_states_kernel, signature=sig, constexprs=ce,
                    options=lambda fam, bd=block_d: cfg.merge_config(fam, bd).options(fam), min_occupancy=2,
                ))


_register_variants()
