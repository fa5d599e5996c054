"""What a plugin may import from corolla: built-in plugins use exactly this, and so may yours.

Everything else in the core is internal and may change; a test keeps the built-in
plugins to this module. Importing it does not import Paddle.

- Registering: :data:`hookimpl`, :func:`lazy`, :func:`lazy_variants`, :class:`Alias`,
  and :func:`current_registry` and :func:`current_key_path` for a component that builds
  other components.
- The contract's types (:mod:`corolla.plugin.hookspecs`): :class:`Run` and the protocols
  a loss, metric, schedule, sampler, transform or exported model follows.
- Errors a plugin raises: :class:`ConfigError`, :class:`DataError`, ...
- Reading configs and model outputs: :class:`ComponentSpec`, :func:`item_spec`,
  :func:`named_spec`, :class:`ModelOutputs`, :func:`pick_output`.
- Data: :func:`generator` (the augmentation random source), :func:`read_image_bytes`,
  :class:`UnreadableImageError`, :class:`Pipeline`, :class:`LabeledImage` (what an op that
  makes labels returns), :func:`build_batch_transform`, and
  :class:`EpochBatchSampler` (shuffled by seed and epoch, dealt between processes) for samplers.
- Weights and files: :func:`weights_table`, :class:`PretrainedWeights`, :data:`MODEL_ZOO_URL`,
  :func:`load_pretrained`, :func:`apply_state_dict`, :func:`describe_weights`,
  :func:`loading_frozen` (a composite building a sub-model that stays frozen),
  :func:`load_state_dict_file` (never runs code from a file), :func:`write_checkpoint` and
  :func:`write_text` (atomic: a crash leaves the old file or the new one).
- Predictions: :class:`Prediction` (what a post-process returns per image), :func:`read_label_map`.
- Showing progress: :func:`progress`, :func:`format_values`.
"""
from corolla.config.specs import ComponentSpec, item_spec, named_spec
from corolla.data.atomic import write_text
from corolla.data.pipeline import LabeledImage, Pipeline, UnreadableImageError, build_batch_transform, read_image_bytes
from corolla.data.placement import process_alive
from corolla.data.randomness import generator
from corolla.data.sampler import EpochBatchSampler
from corolla.engine.files import write_checkpoint
from corolla.engine.formatting import format_values, progress
from corolla.engine.predictions import Prediction, read_label_map
from corolla.engine.safe_pickle import load_state_dict_file
from corolla.engine.model_zoo import MODEL_ZOO_URL, PretrainedWeights, describe_weights, weights_table
from corolla.engine.weights import apply_state_dict, load_pretrained, loading_frozen
from corolla.plugin.errors import (
    ComponentArgumentError,
    ConfigError,
    CorollaError,
    DataError,
    PluginError,
    UnknownComponentError,
    WeightsError,
)
from corolla.plugin.hookspecs import (
    BatchTransform,
    Composite,
    Dataset,
    Loss,
    LrSchedule,
    Metric,
    PostProcess,
    PredictingModel,
    Run,
    Sampler,
    Transform,
)
from corolla.plugin.markers import hookimpl
from corolla.plugin.outputs import ModelOutputs, pick_output
from corolla.plugin.lazy import lazy, lazy_variants
from corolla.plugin.registry import Alias, current_key_path, current_registry

__all__ = [
    "MODEL_ZOO_URL",
    "Alias",
    "BatchTransform",
    "Composite",
    "Dataset",
    "Loss",
    "LrSchedule",
    "Metric",
    "PostProcess",
    "PredictingModel",
    "Prediction",
    "Run",
    "Sampler",
    "Transform",
    "ComponentArgumentError",
    "ComponentSpec",
    "ConfigError",
    "CorollaError",
    "DataError",
    "EpochBatchSampler",
    "LabeledImage",
    "ModelOutputs",
    "Pipeline",
    "PluginError",
    "PretrainedWeights",
    "UnknownComponentError",
    "UnreadableImageError",
    "WeightsError",
    "apply_state_dict",
    "build_batch_transform",
    "current_key_path",
    "current_registry",
    "describe_weights",
    "format_values",
    "generator",
    "hookimpl",
    "item_spec",
    "lazy",
    "lazy_variants",
    "load_pretrained",
    "load_state_dict_file",
    "loading_frozen",
    "named_spec",
    "pick_output",
    "process_alive",
    "progress",
    "read_image_bytes",
    "read_label_map",
    "weights_table",
    "write_checkpoint",
    "write_text",
]
