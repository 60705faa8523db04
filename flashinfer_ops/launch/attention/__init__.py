"""Attention launchers, one module per phase (decode.py, prefill.py); importing this package
imports them all so their ops and variants register."""
import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
