"""The `lib` folders of the nvidia-* pip packages (the ones torch's CUDA build uses), found without
importing torch, so a process that never imports torch (`python -m score`) finds cuBLAS and cuDNN.

onnxruntime-gpu reuses the CUDA libraries torch loaded, or `preload_dlls()` looks beside its own
package; unpacked under /tmp/site it sits away from the machine's nvidia packages, so the visit
puts these folders on LD_LIBRARY_PATH before any step starts.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path


def nvidia_roots() -> list[Path]:
    """The folders of the `nvidia` namespace package on sys.path (none when it is absent)."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or spec.submodule_search_locations is None:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def lib_dirs(roots: Iterable[Path]) -> list[Path]:
    """Every `<root>/<package>/lib` (and lib64) folder that holds a shared library."""
    found = []
    for root in roots:
        for folder in sorted(root.glob("*/lib")) + sorted(root.glob("*/lib64")):
            if any(folder.glob("*.so*")) and folder not in found:
                found.append(folder)
    return found
