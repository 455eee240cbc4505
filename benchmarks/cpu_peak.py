"""The CPU's own peak per arithmetic, from its vector width, units and clock: a ceiling that does
not depend on how well any runtime's kernels are written. An estimate, from the flags the kernel
lists, the vendor and the clock /proc/cpuinfo reports (a virtual machine's may be its base clock,
below what the CPU reaches when it boosts)."""

from __future__ import annotations

import re
from pathlib import Path

# Multiply-adds each core can start per cycle, with two vector FMA pipes (Intel server cores
# with AVX-512 have two 512-bit ones; AMD's Zen 2-4 two 256-bit ones, Zen 4 splitting 512-bit
# instructions in halves). VNNI sums 4 int8 products per 32-bit lane, avx512_bf16 2 bf16
# products; AMX's tiles do 1,024 int8 or 512 bf16 multiply-adds per cycle. Without VNNI an int8
# kernel that cannot saturate widens to 16 bits first: 2 products per 32-bit lane.
AMX = {"int8": 1024, "bf16": 512}


def macs_per_cycle(flags: frozenset[str], vendor: str) -> dict[str, int]:
    """Multiply-adds per cycle per core for each arithmetic these flags run in hardware."""
    if "avx512f" in flags and vendor != "AuthenticAMD":
        lanes = 2 * 16  # two 512-bit pipes of fp32 lanes
    elif "avx512f" in flags or {"avx2", "fma"} <= flags:
        lanes = 2 * 8  # two 256-bit pipes
    else:
        return {}  # not x86 with FMA: no estimate
    macs = {"fp32": lanes, "int8": lanes * 2}
    if "avx512_vnni" in flags:
        macs["int8"] = lanes * 4
    elif "avx_vnni" in flags:
        macs["int8"] = 2 * 8 * 4  # VNNI on 256-bit vectors only
    if "avx512_bf16" in flags:
        macs["bf16"] = lanes * 2
    if "amx_int8" in flags:
        macs["int8"] = AMX["int8"]
    if "amx_bf16" in flags:
        macs["bf16"] = AMX["bf16"]
    return macs


def peak_gops(flags: frozenset[str], vendor: str, mhz: float | None, cores: int) -> dict:
    """G(FL)OP/s per arithmetic on `cores` cores at `mhz` (a multiply-add is 2 operations);
    empty where the clock or the units are unknown."""
    if not mhz:
        return {}
    per_core = macs_per_cycle(flags, vendor)
    return {arith: round(2 * macs * cores * mhz / 1e3, 1) for arith, macs in per_core.items()}


def clock_and_vendor(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[float | None, str]:
    """The highest `cpu MHz` /proc/cpuinfo lists and the vendor (None, "" where it has none)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None, ""
    clocks = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.MULTILINE)]
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", text, re.MULTILINE)
    return (max(clocks) if clocks else None), (vendor.group(1) if vendor else "")
