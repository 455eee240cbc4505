"""The facts about this CPU that choose a branch (int8 preset, CPU variant): read once, passed in.
Every choice made from them is a pure function of a `CpuFacts`, so tests run each branch on any
machine by passing another CPU's facts."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

# The extensions that decide fp32, bf16 and int8 kernel speed, in the order reports list them.
# FMA is left out: every CPU with AVX2 has it.
KEY_FLAGS = (
    "avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8",  # x86
    "asimd", "asimddp",  # Arm
)  # fmt: skip

# CPUs whose bf16 dot products run in hardware; elsewhere bf16 is converted in software (PyTorch)
# or quietly run as fp32 (OpenVINO).
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
NO_BF16 = "this CPU has neither avx512_bf16 nor amx_bf16"

# x86 CPUs whose int8 dot products run without saturating (VNNI, AMX); elsewhere u8 x s8 products
# go through 16-bit pairs that can saturate.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
INT8_DOT_FLAGS = ("amx_int8", *VNNI_FLAGS)


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def int8_dot_flag(flags: frozenset[str]) -> str | None:
    """The flag that gives this CPU int8 dot products without saturation, or None."""
    return next((f for f in INT8_DOT_FLAGS if f in flags), None)


def bf16_flag(flags: frozenset[str]) -> str | None:
    """The flag that makes bf16 arithmetic run in hardware on this CPU, or None."""
    return next((f for f in BF16_FLAGS if f in flags), None)


@dataclass(frozen=True)
class CpuFacts:
    model: str
    machine: str  # platform.machine(): x86_64, aarch64, arm64 ...
    flags: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_arm(self) -> bool:
        return self.machine.lower() in {"aarch64", "arm64"}

    def slug(self) -> str:
        """A folder name for results (`amd-epyc-avx512-vnni-bf16`): other CPUs' runs sit apart."""
        return cpu_slug(self.model, self.flags)

    def describe(self) -> str:
        """One line for reports: model name and the flags that matter."""
        flags = " ".join(key_flags(self.flags)) or "no SIMD flags read"
        return f"{self.model} ({self.machine}; {flags})"


def key_flags(flags: frozenset[str]) -> list[str]:
    """The flags of KEY_FLAGS this CPU has, in KEY_FLAGS' order."""
    return [f for f in KEY_FLAGS if f in flags]


def this_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuFacts:
    """This machine's CPU, read from /proc/cpuinfo where there is one."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        text = ""  # no model name or flags to read
    return parse_cpuinfo(text, platform.machine() or "unknown")


def parse_cpuinfo(text: str, machine: str) -> CpuFacts:
    model = re.search(r"^(?:model name|Model|CPU part)\s*:\s*(.+)$", text, re.MULTILINE)
    flags = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.MULTILINE)
    return CpuFacts(
        model=model.group(1).strip() if model else platform.processor() or "unknown",
        machine=machine,
        flags=frozenset(flags.group(1).split()) if flags else frozenset(),
    )


def cpu_model() -> str:
    """This CPU's model name, e.g. "AMD EPYC" or "Intel(R) Xeon(R) Platinum 8481C CPU"."""
    return this_cpu().model


def cpu_flags() -> frozenset[str]:
    """Every flag the kernel lists for this CPU's first core (x86 `flags`, Arm `Features`)."""
    return this_cpu().flags


def cpu_slug(model: str, flags: frozenset[str]) -> str:
    """The model name without trademarks, core counts and clock, then the ISA that sets speed."""
    name = re.sub(r"\((r|tm)\)|\bcpu\b|\bprocessor\b|\b\d+-core\b|@.*$", " ", model.lower())
    return "-".join(part for part in (_slug(name), isa_tag(flags)) if part) or "cpu"


def isa_tag(flags: frozenset[str]) -> str:
    """`amx`, `avx512[-vnni][-bf16]`, `avx2[-vnni]`, or "" (another architecture)."""
    if "amx_int8" in flags or "amx_bf16" in flags:
        return "amx"
    if "avx512f" in flags:
        return "avx512" + "-vnni" * ("avx512_vnni" in flags) + "-bf16" * ("avx512_bf16" in flags)
    if "avx2" in flags:
        return "avx2" + "-vnni" * ("avx_vnni" in flags)
    return ""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
