"""The CPU's peak per arithmetic, from the facts of each kind of CPU passed in (the expected
figures worked out by hand: multiply-adds per cycle x 2 x cores x clock)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.ceiling import raise_to_peak
from benchmarks.cpu_peak import clock_and_vendor, peak_gops

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
ZEN4 = AVX2 | {"avx512f", "avx512_vnni", "avx512_bf16"}
SAPPHIRE_RAPIDS = ZEN4 | {"amx_tile", "amx_int8", "amx_bf16"}
ALDER_LAKE = AVX2 | {"avx_vnni"}
ARM = frozenset({"fp", "asimd", "asimddp"})


@pytest.mark.parametrize(
    ("flags", "vendor", "mhz", "cores", "expected"),
    [
        # two 256-bit FMA pipes: 16 fp32 multiply-adds a cycle; int8 widened to 16 bits: 32
        (AVX2, "AuthenticAMD", 2445.404, 2, {"fp32": 156.5, "int8": 313.0}),
        # Zen 4 splits 512-bit vectors in halves: as AVX2, with VNNI (x4) and bf16 pairs (x2)
        (ZEN4, "AuthenticAMD", 3000, 2, {"fp32": 192.0, "int8": 768.0, "bf16": 384.0}),
        # two 512-bit pipes; AMX tiles: 1,024 int8 and 512 bf16 multiply-adds a cycle
        (SAPPHIRE_RAPIDS, "GenuineIntel", 2000, 2, {"fp32": 256.0, "int8": 8192.0, "bf16": 4096.0}),
        (ALDER_LAKE, "GenuineIntel", 3000, 1, {"fp32": 96.0, "int8": 384.0}),  # 256-bit VNNI
        (ARM, "", 2000, 2, {}),  # no estimate for Arm's units
        (AVX2, "AuthenticAMD", None, 2, {}),  # no clock listed
    ],
)
def test_peak_from_vector_units_cores_and_clock(flags, vendor, mhz, cores, expected):
    assert peak_gops(flags, vendor, mhz, cores) == expected


def test_the_peak_replaces_a_lower_measured_ceiling_only(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    core = "vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\ncpu MHz\t\t: {}\nflags\t\t: {}\n\n"
    flags = " ".join(sorted(AVX2))
    cpuinfo.write_text(core.format("2445.404", flags) + core.format("2000.000", flags))
    assert clock_and_vendor(cpuinfo) == (2445.404, "AuthenticAMD")  # the highest clock listed
    gemm = {"fp32": {"gops": 143.2, "kernel": "onnxruntime fp32"}, "int8": {"gops": 400.0}}
    raise_to_peak(gemm, 2, cpuinfo)
    assert gemm["fp32"]["gops"] == 156.5 and gemm["fp32"]["cpu_peak"] == 156.5
    assert gemm["fp32"]["kernel"].startswith("the CPU's peak (2 cores at 2,445 MHz")
    assert gemm["int8"] == {"gops": 400.0, "cpu_peak": 313.0}  # measured above the estimate
    assert clock_and_vendor(tmp_path / "absent") == (None, "")
