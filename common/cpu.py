"""This CPU's model name and instruction-set flags, read from /proc/cpuinfo (no torch).

Callers pass the flags on to pure choice functions, so every choice can be tested with the
facts of another kind of CPU.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_model() -> str:
    """The model name, e.g. "AMD EPYC" or "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"."""
    found = re.search(r"^model name\s*:\s*(.+)$", _cpuinfo(), re.MULTILINE)
    return found.group(1).strip() if found else platform.processor() or "unknown"


def cpu_flags() -> frozenset[str]:
    """Every flag the kernel lists for the first core (x86 `flags`, Arm `Features`)."""
    found = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", _cpuinfo(), re.MULTILINE)
    return frozenset(found.group(1).split()) if found else frozenset()


def _cpuinfo() -> str:
    try:
        return CPUINFO.read_text()
    except OSError:  # not Linux: no flags, and the choices fall back to their safe default
        return ""
