"""Matrix-product throughput of this CPU in float32, bf16 and int8 (dynamic quantisation):
the measurement behind ``ner_core.inference.cpu_fast_kind``'s choice. Float32 twice: through
``nn.Linear`` (BLAS) and through ``ner_core.inference._dense`` (oneDNN, which exact mode uses),
and how far apart the two results are.

Run:  python benchmarks/cpu_matmul.py [--out FILE]
Writes benchmarks/results/cpu_matmul.json (or FILE).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
ROWS, IN, OUT, REPEATS = 2048, 384, 1536, 20  # an e5-small FFN product over a batch


def gflops(fn, x) -> float:
    with torch.inference_mode():
        for _ in range(3):
            fn(x)
        t0 = time.perf_counter()
        for _ in range(REPEATS):
            fn(x)
    return REPEATS * 2 * ROWS * IN * OUT / (time.perf_counter() - t0) / 1e9


def _largest_difference(linear: torch.nn.Linear, x: torch.Tensor) -> float:
    """Largest difference of the two float32 paths relative to the output's largest value."""
    from ner_core.inference import _dense

    with torch.inference_mode():
        ref = linear(x)
        return float((ref - _dense(linear, x)).abs().max() / ref.abs().max())


def main() -> None:
    from ner_core.inference import _dense, cpu_fast_kind

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "cpu_matmul.json", help="where the JSON goes")
    args = parser.parse_args()

    torch.manual_seed(0)
    linear = torch.nn.Linear(IN, OUT)
    x = torch.randn(ROWS, IN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        int8 = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear}, dtype=torch.qint8)
    bf16 = torch.nn.Linear(IN, OUT).to(torch.bfloat16)
    report = {
        "shape": [ROWS, IN, OUT],
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "fast_precision_kind": cpu_fast_kind(),
        "float32_gflops": gflops(linear, x),
        "float32_onednn_gflops": gflops(lambda t: _dense(linear, t), x),
        "float32_onednn_relative_difference": _largest_difference(linear, x),
        "bfloat16_gflops": gflops(bf16, x.to(torch.bfloat16)),
        "int8_dynamic_gops": gflops(int8, x),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
