"""The config sections the core itself reads, validated: ``Global``, ``AMP``, ``EMA``, a
loader's ``loader``, and ``Infer`` (samplers are components: the ``sampler`` plugin kind)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import attrs

from corolla.config.schema import (
    any_value,
    boolean,
    choice,
    integer,
    list_of,
    mapping_of,
    number,
    optional,
    section,
    setting,
    structure,
    text,
)
from corolla.plugin.discovery import check_requirements, load_registry
from corolla.plugin.registry import Registry


@attrs.frozen
class PluginSettings:
    """``Global.plugins``: which plugins to skip, which wins a name clash, strictness, and
    the plugin distributions the config needs (``require: ["my-models>=0.2"]``)."""

    disable: list = setting(list, list_of(text), factory=True)
    require: list = setting(list, list_of(text), factory=True)
    prefer: dict = setting(dict, mapping_of(text, text), factory=True)
    strict: bool = setting(False, boolean)


def plugin_registry(config: Mapping[str, Any], *, disabled: Sequence[str] = (), prefer: Mapping[str, str] | None = None,
                    strict: bool = False) -> Registry:
    """The registry a run of ``config`` uses: its ``Global.plugins`` (required distributions
    checked) together with the command line's ``disabled``, ``prefer`` (which wins) and ``strict``."""
    settings = structure(PluginSettings, (config.get("Global") or {}).get("plugins"), "Global.plugins")
    check_requirements(settings.require, key_path="Global.plugins.require")
    return load_registry(disabled=[*disabled, *settings.disable], strict=strict or settings.strict,
                         prefer={**settings.prefer, **(prefer or {})})


#: ``Global.eval_engine``'s values: evaluation on CPU through an inference engine where it
#: pays off (auto), always through Paddle Inference or ONNX Runtime, or always in dygraph
EVAL_ENGINES = ("auto", "inference", "onnxruntime", "dygraph")


def _default_callbacks() -> list:
    return [{"ConsoleLogger": None}, {"MetricsLog": None}, {"CurvePlot": None}]


@attrs.frozen
class GlobalSection:
    """``Global``: the run's settings, with PaddleClas's names and defaults."""

    epochs: int = setting(1, integer(1))
    #: gradient accumulation: one optimizer step per update_freq batches (each batch's loss / update_freq)
    update_freq: int = setting(1, integer(1))
    print_batch_step: int = setting(10, integer(1))
    save_interval: int = setting(1, integer(1))
    eval_during_train: bool = setting(True, boolean)
    eval_interval: int = setting(1, integer(1))
    start_eval_epoch: int = setting(0, integer(0))
    output_dir: str = setting("./output/", text)
    checkpoints: str | None = setting(None, optional(text))
    pretrained_model: str | None = setting(None, optional(text))
    device: str = setting("cpu", choice("cpu", "gpu"))
    seed: int | None = setting(None, optional(integer(0)))
    image_shape: list = setting(lambda: [3, 224, 224], list_of(integer(1), length=3), factory=True)
    save_inference_dir: str = setting("./inference", text)
    use_visualdl: bool = setting(False, boolean)
    eval_mode: str = setting("classification", choice("classification"))
    eval_engine: str = setting("auto", choice(*EVAL_ENGINES))
    class_num: int | None = setting(None, optional(integer(1)))  # PaddleClas copies it to Arch.class_num
    #: a multi-label task: infer, export and predict turn logits into per-class sigmoid probabilities
    use_multilabel: bool = setting(False, boolean)
    #: training steps (forward pass and loss) compiled with paddle.jit.to_static; the update stays eager
    to_static: bool = setting(False, boolean)
    fp16: bool = setting(False, boolean)  # seed 002's flag: the same as an AMP section with level O1
    scale_loss: float = setting(1.0, number(0.0))  # seed 002's loss scale for fp16
    callbacks: list = setting(_default_callbacks, list_of(any_value), factory=True)
    plugins: PluginSettings = section(PluginSettings)


def read_global(config: Mapping[str, Any]) -> GlobalSection:
    """Validate ``Global``. PaddleClas keys corolla does not use (``use_dali``, ...)
    are warnings, so PaddleClas configs run unchanged."""
    return structure(GlobalSection, config.get("Global"), "Global", unknown="warn")


@attrs.frozen
class AmpSection:
    """``AMP``: mixed-precision training (PaddleClas's keys). Paddle uses low-precision
    kernels only on GPU (and XPU); on CPU the engine warns and trains in float32."""

    use_amp: bool = setting(True, boolean)
    scale_loss: float = setting(1.0, number(0.0))
    use_dynamic_loss_scaling: bool = setting(False, boolean)
    level: str = setting("O1", choice("O1", "O2"))
    dtype: str | None = setting(None, optional(choice("float16", "bfloat16")))
    use_fp16_test: bool = setting(False, boolean)
    use_promote: bool = setting(False, boolean)


def read_amp(config: Mapping[str, Any], settings: GlobalSection) -> AmpSection | None:
    """The AMP settings, or None when mixed precision is off.

    Seed 002's ``Global.fp16: true`` with ``Global.scale_loss: X`` means
    ``AMP: {level: O1, scale_loss: X}``; an ``AMP`` section, when present, wins.
    """
    if config.get("AMP") is not None:
        amp = structure(AmpSection, config["AMP"], "AMP")
        return amp if amp.use_amp else None
    if settings.fp16:
        return AmpSection(scale_loss=settings.scale_loss, level="O1")
    return None


def _unit_interval(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ValueError("a number between 0 and 1 (exclusive)")
    return float(value)


@attrs.frozen
class EmaSection:
    """``EMA``: an exponential moving average of the weights, updated every step as
    ``ema = decay * ema + (1 - decay) * weights``; evaluated beside the model and
    saved as ``best_model_ema`` / ``<checkpoint>.pdema``."""

    decay: float = setting(0.9999, _unit_interval)


def read_ema(config: Mapping[str, Any]) -> EmaSection | None:
    """The EMA settings, or None when the config has no ``EMA`` section."""
    if config.get("EMA") is None:
        return None
    return structure(EmaSection, config["EMA"], "EMA")


def _or_auto(check: Any) -> Any:
    def wrapped(value: Any) -> Any:
        if value == "auto":
            return value
        try:
            return check(value)
        except ValueError as exc:
            raise ValueError(f"'auto' or {exc}") from None

    return wrapped


@attrs.frozen
class LoaderSettings:
    """``DataLoader.<Mode>.loader``; ``skip_bad_images`` and ``device_transforms`` are corolla's.

    ``num_workers: auto`` (the default) is 0 (one background thread) on CPU and the cores of
    this process less two, at most 16, on GPU (:func:`corolla.data.device.worker_count`).
    ``device_transforms`` sends uint8 batches to the GPU and runs the trailing transforms
    that can (RandFlipImage, NormalizeImage, ToCHWImage) there: ``auto`` on GPU, ``true``
    also on CPU (:mod:`corolla.data.device`).
    """

    num_workers: int | str = setting("auto", _or_auto(integer(0)))
    use_shared_memory: bool = setting(True, boolean)
    skip_bad_images: bool = setting(False, boolean)
    device_transforms: bool | str = setting("auto", _or_auto(boolean))


@attrs.frozen
class InferSection:
    """``Infer``: what ``infer`` and ``predict`` classify, and how. ``transforms`` and
    ``PostProcess`` are components, planned with the rest."""

    infer_imgs: str | None = setting(None, optional(text))
    batch_size: int = setting(10, integer(1))
    transforms: list = setting(list, list_of(any_value), factory=True)
    PostProcess: dict | None = setting(None, optional(mapping_of(text, any_value)))
