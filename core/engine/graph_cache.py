"""Converted evaluation graphs kept across processes, without their weights.

Tracing a network to a static graph and converting it to ONNX costs more than the rest of
a short evaluation (PPLCNet_x1_0: about 1.6 s, against 4 s for 1024 images). The graph
depends only on the network, not on its weights, so after the first conversion the graph
is kept with its weights moved out to an external-data file (``weights.bin``, the ONNX
format's own way to hold tensors outside the model), and a later evaluation of the same
network (another checkpoint, the next epoch, another ``corolla eval``) writes its current
weights into that file's layout and hands both to ONNX Runtime: no trace, no conversion.

An entry is found by :func:`graph_key`: a digest of everything the graph is made from:
the Paddle and paddle2onnx versions, the input shape and outputs, every sub-layer's type,
settings and parameter shapes, and the source files of the network's classes (so editing
a plugin's code makes a new entry). Before an entry is kept, every weight it expects must
sit in the graph unchanged (byte for byte); the evaluation also checks the cached graph's
outputs against dygraph's, as it checks a fresh trace, and replaces an entry that
disagrees.

The cache folder is ``$COROLLA_GRAPH_CACHE``, else ``~/.cache/corolla/graphs``;
``COROLLA_GRAPH_CACHE=off`` turns it off. Entries are small (the graph without its
weights: tens of kilobytes) and written atomically (a folder renamed into place).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import paddle

from corolla.engine.runtimes import ONNX_NAME

GRAPH_CACHE_ENV = "COROLLA_GRAPH_CACHE"
GRAPH_FILE = "graph.onnx"
WEIGHTS_FILE = "weights.bin"
LAYOUT_FILE = "layout.json"
#: bumped when what an entry holds, or how it is made, changes
FORMAT = 1
#: the modules whose code shapes every graph: how a model is wrapped, traced and converted
_TRACING_MODULES = (__name__, "corolla.engine.runtimes", "corolla.engine.eval_engine", "corolla.engine.onnx_convert")
_PLAIN = (bool, int, float, str, type(None))


def cache_root() -> Path | None:
    """The cache folder (see the module docstring), or None when the cache is off."""
    configured = os.environ.get(GRAPH_CACHE_ENV)
    if configured == "off":
        return None
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "corolla" / "graphs"


def graph_key(model: paddle.nn.Layer, paths: Sequence[Sequence[str]], image_shape: Sequence[int]) -> str:
    """A digest of what ``model``'s graph (outputs at ``paths``, inputs of ``image_shape``) is made of."""
    digest = hashlib.sha256()

    def feed(*parts: Any) -> None:
        digest.update(repr(parts).encode())

    feed(FORMAT, paddle.__version__, _version("paddle2onnx"), tuple(image_shape), [tuple(p) for p in paths])
    persistable = model.state_dict()
    for name, tensor in persistable.items():
        feed(name, tuple(tensor.shape), str(tensor.dtype))
    for name, buffer in model.named_buffers():
        if name not in persistable and buffer is not None:  # baked into the graph: their values count
            feed(name, hashlib.sha256(np.ascontiguousarray(buffer.numpy()).tobytes()).hexdigest())
    for name, layer in model.named_sublayers(include_self=True):
        settings = sorted((k, v) for k, v in vars(layer).items() if not k.startswith("_") and _plain(v))
        feed(name, type(layer).__module__, type(layer).__qualname__, layer.extra_repr(), settings)
    for path in sorted(_source_files(model)):
        feed(path, hashlib.sha256(Path(path).read_bytes()).hexdigest())
    return digest.hexdigest()[:32]


class GraphCache:
    """The entries under ``root``: one folder per :func:`graph_key`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find(self, key: str) -> Path | None:
        entry = self.root / key
        return entry if (entry / LAYOUT_FILE).is_file() else None

    def restore(self, entry: Path, state: Mapping[str, paddle.Tensor], folder: Path) -> None:
        """Write ``entry``'s graph with the weights ``state`` (by structured name) as ``folder/inference.onnx``."""
        layout = json.loads((entry / LAYOUT_FILE).read_text())
        with open(folder / WEIGHTS_FILE, "wb") as weights:
            for name, offset, size in layout:
                data = _bytes(state[name])
                if len(data) != size:
                    raise ValueError(f"graph cache {entry}: {name} has {len(data)} bytes, the graph expects {size}")
                weights.seek(offset)
                weights.write(data)
        shutil.copyfile(entry / GRAPH_FILE, folder / ONNX_NAME)

    def keep(self, key: str, staging: Path, names: Mapping[str, str], state: Mapping[str, paddle.Tensor]) -> bool:
        """Keep the entry a conversion wrote in ``staging`` (its layout by parameter name;
        ``names`` maps those to structured names) if every weight in it equals ``state``'s; whether it was kept."""
        layout = json.loads((staging / LAYOUT_FILE).read_text())
        weights = (staging / WEIGHTS_FILE).read_bytes()
        entries = []
        for var, offset, size in layout:
            name = names.get(var)
            if name is None or weights[offset:offset + size] != _bytes(state[name]):
                return False
            entries.append([name, offset, size])
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            entry = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
        except OSError as exc:
            warnings.warn(f"graph cache: cannot write to {self.root} ({exc}); later evaluations trace again "
                          f"(set {GRAPH_CACHE_ENV} to a writable folder, or to off)", UserWarning, stacklevel=2)
            return False
        try:
            shutil.copyfile(staging / GRAPH_FILE, entry / GRAPH_FILE)
            (entry / LAYOUT_FILE).write_text(json.dumps(entries))
            entry.rename(self.root / key)
        except OSError:  # a full disk, or another process kept the same entry first
            shutil.rmtree(entry, ignore_errors=True)
            return False
        return True

    def discard(self, key: str) -> None:
        shutil.rmtree(self.root / key, ignore_errors=True)


def write_entry(model: Any, params: Sequence[str], staging: Path) -> None:
    """In the conversion's child: the ONNX ``model`` with the tensors named ``params`` (constants or
    initializers) moved to ``staging/weights.bin``, as ``staging/graph.onnx``, with their layout."""
    from onnx import external_data_helper, helper, numpy_helper

    wanted = set(params)
    tensors: dict[str, Any] = {}
    constants: set[str] = set()  # the weights that were Constant nodes: they become initializers
    kept_nodes = []
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.output) == 1 and node.output[0] in wanted:
            tensor = helper.get_attribute_value(next(a for a in node.attribute if a.name == "value"))
            tensor.name = node.output[0]
            tensors[tensor.name] = tensor
            constants.add(tensor.name)
        else:
            kept_nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept_nodes)
    for tensor in model.graph.initializer:
        if tensor.name in wanted:
            tensors[tensor.name] = tensor
    layout, offset = [], 0
    with open(staging / WEIGHTS_FILE, "wb") as weights:
        for name in params:
            tensor = tensors.get(name)
            if tensor is None:  # not used by the graph
                continue
            data = _bytes(numpy_helper.to_array(tensor))
            weights.write(data)
            if name in constants:
                model.graph.initializer.append(tensor)
                tensor = model.graph.initializer[-1]
            for field in ("float_data", "int32_data", "int64_data", "double_data"):
                tensor.ClearField(field)
            tensor.raw_data = data  # set_external_data wants it, then it goes
            external_data_helper.set_external_data(tensor, WEIGHTS_FILE, offset=offset, length=len(data))
            tensor.ClearField("raw_data")
            layout.append([name, offset, len(data)])
            offset += len(data)
    (staging / GRAPH_FILE).write_bytes(model.SerializeToString())
    (staging / LAYOUT_FILE).write_text(json.dumps(layout))


def _bytes(tensor: Any) -> bytes:
    array = tensor.numpy() if isinstance(tensor, paddle.Tensor) else tensor
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _plain(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return all(_plain(item) for item in value)
    return isinstance(value, _PLAIN)


def _source_files(model: paddle.nn.Layer) -> set[str]:
    """The source files of ``model``'s classes and their bases outside Paddle, and of the code that traces them."""
    paddle_root = str(Path(paddle.__file__).parent)
    files = {importlib.import_module(name).__file__ for name in _TRACING_MODULES}
    for layer in model.sublayers(include_self=True):
        for cls in type(layer).__mro__:
            path = getattr(sys.modules.get(cls.__module__), "__file__", None)
            if path and not path.startswith(paddle_root):
                files.add(path)
    return files


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
