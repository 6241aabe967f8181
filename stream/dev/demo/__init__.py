"""`fundflow demo`: the whole pipeline on one machine with nothing to install beyond the package."""

from .run import DemoOptions, run_demo
from .worker import DemoError

__all__ = ["DemoError", "DemoOptions", "run_demo"]
