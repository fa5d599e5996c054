"""ONNX export: a saved Paddle inference model converted by paddle2onnx in a child process.

paddle2onnx aborts its whole process (SIGABRT, no Python exception) on an operator it
cannot convert, so the conversion runs in a child (``python -m
corolla.engine.onnx_convert``): a failure becomes an error naming the model and
paddle2onnx's message, and the export in progress is discarded like any other failure.
Importing paddle2onnx (it imports Paddle) is most of a conversion's time, so a
:class:`Conversion` can start its child before the model is saved: the child imports
meanwhile and then reads what to convert from its standard input.
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
from typing import Sequence

from corolla.engine.graph_cache import write_entry
from corolla.engine.runtimes import ONNX_NAME, PARAMS_NAME, program_file, require
from corolla.plugin.errors import CorollaError

OPSET = 13
#: a conversion that takes longer than this is stuck (VGG19 converts in under a minute here)
TIMEOUT_S = 1800


class ConversionError(CorollaError):
    """paddle2onnx could not convert the model, or the result disagrees with Paddle."""


class Conversion:
    """One conversion by a child process, started now (it imports paddle2onnx) and given its
    model by :meth:`run`; :meth:`close` stops a child that is not needed after all."""

    def __init__(self) -> None:
        require("paddle2onnx", "onnx", purpose="ONNX export")
        self._child = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)

    def run(self, folder: Path, *, opset: int = OPSET, entry: tuple[Path, Sequence[str]] | None = None) -> int:
        """Write ``folder/inference.onnx`` from the Paddle inference model in ``folder``; return its opset.
        With ``entry`` (a folder and parameter names), also write there the graph with those
        weights moved out, for :class:`corolla.engine.graph_cache.GraphCache`."""
        program = program_file(folder)
        if program is None:
            self.close()
            raise ConversionError(f"{folder}: no inference.json or inference.pdmodel to convert to ONNX")
        request = json.dumps({"program": str(program), "params": str(folder / PARAMS_NAME),
                              "target": str(folder / ONNX_NAME), "opset": opset,
                              "entry": [str(entry[0]), list(entry[1])] if entry else None})
        try:
            stdout, stderr = self._child.communicate(request + "\n", timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.close()
            raise ConversionError(f"paddle2onnx did not finish converting {program} within {TIMEOUT_S} s") from None
        if self._child.returncode != 0:
            raise ConversionError(f"paddle2onnx could not convert {program} to ONNX (exit status "
                                  f"{self._child.returncode}): {_reason(stdout + stderr)}. "
                                  "'corolla export --format paddle' does not need it")
        # paddle2onnx prints from C++ too: find the child's own line, wherever it landed
        result = next(line for line in reversed(stdout.splitlines()) if line.startswith('{"opset"'))
        return int(json.loads(result)["opset"])

    def close(self) -> None:
        if self._child.poll() is None:
            self._child.kill()
            self._child.communicate()


def convert(folder: Path, *, opset: int = OPSET) -> int:
    """Write ``folder/inference.onnx`` from the Paddle inference model in ``folder``; return its opset."""
    return Conversion().run(folder, opset=opset)


def _reason(output: str) -> str:
    """paddle2onnx's error lines (or the last lines) of the child's output, on one line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "Error:" in line]
    return " | ".join(errors or lines[-3:] or ["no output"])[:600].rstrip(".")


def _main() -> None:
    import onnx
    import paddle2onnx

    request = sys.stdin.readline()
    if not request:  # the parent did not need this conversion after all
        return
    request = json.loads(request)
    model = paddle2onnx.export(request["program"], request["params"], None, opset_version=int(request["opset"]),
                               auto_upgrade_opset=True, enable_onnx_checker=True)
    if not model:
        raise SystemExit(f"Error: paddle2onnx returned no model for {request['program']}")
    Path(request["target"]).write_bytes(model)
    proto = onnx.load_from_string(model)
    written = max(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))
    if request["entry"]:
        folder, params = request["entry"]
        try:
            write_entry(proto, params, Path(folder))
        except Exception as exc:  # noqa: BLE001 - the cache entry is optional; the conversion stands
            print(f"graph cache: no entry ({type(exc).__name__}: {exc})", file=sys.stderr)
    print(json.dumps({"opset": written}))


if __name__ == "__main__":
    _main()
