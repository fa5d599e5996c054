"""The model zoo: PaddleClas's published weights (tables of URL, ImageNet top-1 and input
size) and the download cache they are fetched into."""
from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Mapping

import attrs
from tqdm import tqdm

from corolla.plugin.errors import WeightsError

#: Environment variable naming the download cache folder.
WEIGHTS_DIR_ENV = "COROLLA_WEIGHTS_DIR"
#: Where PaddleClas publishes its ImageNet-1k weights.
MODEL_ZOO_URL = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/"


@attrs.frozen
class PretrainedWeights:
    """One published weights file: its URL, ImageNet-1k top-1 accuracy and input size."""

    url: str
    top1: float | None
    input_size: int = 224


def weights_table(url_pattern: str, top1: Mapping[str, float | None], *, input_size: int = 224) -> dict[str, PretrainedWeights]:
    """Published files: name -> ``url_pattern.format(name)`` with its ImageNet top-1 and input size.
    Tables of several patterns or sizes are joined with ``|``."""
    return {name: PretrainedWeights(url_pattern.format(name), accuracy, input_size) for name, accuracy in top1.items()}


# --- the cache and downloads --------------------------------------------------


def weights_dir() -> Path:
    """The download cache: ``$COROLLA_WEIGHTS_DIR``, else ``~/.cache/corolla/weights``."""
    configured = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "corolla" / "weights"


def cache_path(url: str) -> Path:
    """Where the file at ``url`` is (or will be) cached."""
    return weights_dir() / Path(urllib.parse.urlparse(url).path).name


def fetch(url: str) -> Path:
    """The cached copy of ``url``, downloading it first (with a progress bar) if needed.

    The download goes to a temporary file that is renamed into place only when
    complete, so an interrupted download never leaves a truncated file behind.
    """
    target = cache_path(url)
    if target.is_file():
        return target
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            expected = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name, disable=None) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        received = partial.stat().st_size
        if expected is not None and received != expected:
            raise OSError(f"the connection closed after {received} of {expected} bytes")
        os.replace(partial, target)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"HTTP {exc.code} {exc.reason}"
        else:
            reason = getattr(exc, "reason", exc)
        raise WeightsError(
            f"could not download {url} ({reason}). If this machine is offline, download that file "
            f"elsewhere and put it at {target} (the cache folder is ${WEIGHTS_DIR_ENV}, "
            f"default ~/.cache/corolla/weights)."
        ) from exc
    return target


# --- describing the tables ----------------------------------------------------------


def describe_weights(name: str, table: Mapping[str, PretrainedWeights]) -> str:
    """The published weights of ``name`` (and its SSLD variant) as text, for ``corolla plugins show``."""
    rows = [(key, table[key]) for key in (name, f"{name}_ssld") if key in table]
    if not rows:
        return "pretrained weights: none published; pass a local path or URL as pretrained"
    width = max(len(key) for key, _ in rows)
    lines = ["pretrained weights (ImageNet-1k; pretrained=True, use_ssld=True for *_ssld):"]
    for key, weights in rows:
        top1 = f"{weights.top1:.2%}" if weights.top1 is not None else "-"
        lines.append(f"  {key.ljust(width)}  top-1 {top1:>7}  input {weights.input_size}  {weights.url}")
    lines.append(f"  cache: {weights_dir()} (set ${WEIGHTS_DIR_ENV} to change)")
    return "\n".join(lines)
