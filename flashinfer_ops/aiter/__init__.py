"""The ".aiter" overloads: adapters from FlashInfer's arguments to AMD AITER's entry points.

Each adapter module (aiter/<domain>.py) is imported and registered only when `import aiter`
succeeds, so a machine without AITER never sees a half-working overload. The rules that choose
between ".default" and ".aiter" for `backend=` are pure functions here, so they can be tested
without AMD hardware.
"""
import importlib
import importlib.util
import logging
import sys

import torch

logger = logging.getLogger("flashinfer")

ADAPTER_MODULES = ("norm", "page")
_loaded = False
_warned = set()


def aiter_importable() -> bool:
    """True when `import aiter` works (a module injected into sys.modules counts)."""
    if "aiter" in sys.modules:
        return sys.modules["aiter"] is not None
    if importlib.util.find_spec("aiter") is None:
        return False
    try:
        importlib.import_module("aiter")
        return True
    except Exception:  # AITER's import JIT-builds modules and can fail in many ways
        return False


def load_aiter_overloads() -> bool:
    """Register every ".aiter" overload if AITER imports; returns whether they are live."""
    global _loaded
    if _loaded:
        return True
    if not aiter_importable():
        return False
    for name in ADAPTER_MODULES:
        importlib.import_module(f"{__name__}.{name}").register()
    _loaded = True
    return True


def aiter_overloads_loaded() -> bool:
    return _loaded


def amd_arch(device: torch.device) -> str:
    """gfx arch name of `device`, or "" when it is not an AMD GPU."""
    if device.type != "cuda" or torch.version.hip is None:
        return ""
    return torch.cuda.get_device_properties(device).gcnArchName.split(":")[0]


def warn_once(device, reason: str, message: str) -> None:
    """One warning per (device, reason), as FlashInfer+ROCm does for auto fallbacks."""
    key = (str(device), reason)
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)


def require_aiter(what: str) -> None:
    if not load_aiter_overloads():
        raise ImportError(
            f"{what}: backend='aiter' needs AMD's AITER package (`import aiter` failed or it is not "
            "installed); install it from https://github.com/ROCm/aiter or use backend='auto'"
        )
