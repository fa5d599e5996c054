"""ONNX export: a saved Paddle inference model converted by paddle2onnx in a child process.

paddle2onnx aborts its whole process (SIGABRT, no Python exception) on an operator it
cannot convert, so the conversion runs in a child (``python -m
corolla.engine.onnx_convert``): a failure becomes an error naming the model and
paddle2onnx's message, and the export in progress is discarded like any other failure.
The child takes the ONNX bytes that ``paddle2onnx.export`` returns (no ``save_file``,
which also skips the optimisation step that tries to pip-install its helpers) and writes
them itself.

Opset :data:`OPSET` at least; paddle2onnx raises it where an operator needs a newer
one, and the opset written is returned (and recorded in ``inference.yml``). The batch
dimension is dynamic; height and width are fixed to ``Global.image_shape``.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from corolla.engine.runtimes import ONNX_NAME, PARAMS_NAME, program_file, require
from corolla.plugin.errors import CorollaError

OPSET = 13
#: a conversion that takes longer than this is stuck (VGG19 converts in under a minute here)
TIMEOUT_S = 1800


class ConversionError(CorollaError):
    """paddle2onnx could not convert the model, or the result disagrees with Paddle."""


def convert(folder: Path, *, opset: int = OPSET) -> int:
    """Write ``folder/inference.onnx`` from the Paddle inference model in ``folder``; return its opset."""
    require("paddle2onnx", "onnx", purpose="ONNX export")
    program = program_file(folder)
    if program is None:
        raise ConversionError(f"{folder}: no inference.json or inference.pdmodel to convert to ONNX")
    command = [sys.executable, "-m", __name__, str(program), str(folder / PARAMS_NAME), str(folder / ONNX_NAME), str(opset)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ConversionError(f"paddle2onnx did not finish converting {program} within {TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise ConversionError(f"paddle2onnx could not convert {program} to ONNX (exit status {done.returncode}): "
                              f"{_reason(done.stdout + done.stderr)}. 'corolla export --format paddle' does not need it")
    # paddle2onnx prints from C++ too: find the child's own line, wherever it landed
    result = next(line for line in reversed(done.stdout.splitlines()) if line.startswith('{"opset"'))
    return int(json.loads(result)["opset"])


def _reason(output: str) -> str:
    """paddle2onnx's error lines (or the last lines) of the child's output, on one line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "Error:" in line]
    return " | ".join(errors or lines[-3:] or ["no output"])[:600].rstrip(".")


def _main(program: str, params: str, target: str, opset: str) -> None:
    import onnx
    import paddle2onnx

    model = paddle2onnx.export(program, params, None, opset_version=int(opset), auto_upgrade_opset=True,
                               enable_onnx_checker=True)
    if not model:
        raise SystemExit(f"Error: paddle2onnx returned no model for {program}")
    Path(target).write_bytes(model)
    written = max(entry.version for entry in onnx.load_from_string(model).opset_import if entry.domain in ("", "ai.onnx"))
    print(json.dumps({"opset": written}))


if __name__ == "__main__":
    _main(*sys.argv[1:5])
