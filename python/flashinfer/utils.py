"""Small helpers FlashInfer exports."""
import torch


def next_positive_power_of_2(x: int) -> int:
    """Smallest power of two >= max(x, 1)."""
    return 1 if x < 1 else 1 << (int(x) - 1).bit_length()


def use_torch_custom_ops_enabled() -> bool:
    """Always True here: every kernel is a torch.ops.flashinfer operator with a fake, so
    torch.compile traces through without FLASHINFER_USE_TORCH_CUSTOM_OPS."""
    return True


def device_support_pdl(device: torch.device) -> bool:
    """Programmatic dependent launch is an NVIDIA feature; never used here."""
    return False
