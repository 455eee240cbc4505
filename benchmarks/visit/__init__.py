"""Helpers of the GPU visit script (benchmarks/gpu_check.sh): preflight, time-limited steps, inputs,
checks of the results and the summary that comes back from the device machine."""
