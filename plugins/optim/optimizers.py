"""Optimizers named in ``Optimizer.name``, with PaddleClas's parameter names and defaults.

Each builder takes the engine-made ``model`` and ``learning_rate`` (a float or
an lr schedule) plus the config keys of the ``Optimizer`` section:

- ``regularizer: {name: L2|L1, coeff: X}``: weight decay applied through the
  gradient (PaddleClas's ``regularizer``); or ``weight_decay: X`` as a plain L2
  coefficient (for AdamW, the decoupled decay coefficient).
- ``no_weight_decay_name: "bn bias"``: parameters whose structured name
  contains any of these space-separated words get no weight decay;
  ``one_dim_param_no_weight_decay: true`` does the same for 1-D parameters.
- ``clip_norm: X`` clips each gradient tensor to L2 norm X (as PaddleClas);
  ``clip_global_norm: X`` clips by the global norm of all gradients.
- AdamW's ``clip_grad`` is accepted and ignored, with a warning, as PaddleClas's AdamW
  ignores it (it swallows unknown keys): 18 of its configs set it.

Per-parameter learning-rate multipliers that a backbone sets from
``lr_mult_list`` (``ParamAttr(learning_rate=...)``) are applied by Paddle's
optimizers themselves; these builders keep every parameter's attributes.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping

import paddle

from corolla.api import ConfigError

_REGULARIZERS = {"L2": paddle.regularizer.L2Decay, "L1": paddle.regularizer.L1Decay}


def Momentum(
    *,
    model: paddle.nn.Layer,
    learning_rate: Any,
    momentum: float = 0.9,
    use_nesterov: bool = False,
    regularizer: Mapping[str, Any] | None = None,
    weight_decay: float | None = None,
    no_weight_decay_name: str | None = None,
    one_dim_param_no_weight_decay: bool = False,
    clip_norm: float | None = None,
    clip_global_norm: float | None = None,
    multi_precision: bool = True,
) -> paddle.optimizer.Optimizer:
    """SGD with momentum (PaddleClas's default optimizer)."""
    _check_momentum(momentum)
    common = _common(model, regularizer, weight_decay, no_weight_decay_name, one_dim_param_no_weight_decay,
                     clip_norm, clip_global_norm)
    return paddle.optimizer.Momentum(learning_rate=learning_rate, momentum=momentum, use_nesterov=use_nesterov,
                                     multi_precision=multi_precision, **common)


def SGD(
    *,
    model: paddle.nn.Layer,
    learning_rate: Any,
    regularizer: Mapping[str, Any] | None = None,
    weight_decay: float | None = None,
    no_weight_decay_name: str | None = None,
    one_dim_param_no_weight_decay: bool = False,
    clip_norm: float | None = None,
    clip_global_norm: float | None = None,
    multi_precision: bool = False,
) -> paddle.optimizer.Optimizer:
    """Plain stochastic gradient descent."""
    common = _common(model, regularizer, weight_decay, no_weight_decay_name, one_dim_param_no_weight_decay,
                     clip_norm, clip_global_norm)
    return paddle.optimizer.SGD(learning_rate=learning_rate, multi_precision=multi_precision, **common)


def Adam(
    *,
    model: paddle.nn.Layer,
    learning_rate: Any,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
    regularizer: Mapping[str, Any] | None = None,
    weight_decay: float | None = None,
    no_weight_decay_name: str | None = None,
    one_dim_param_no_weight_decay: bool = False,
    clip_norm: float | None = None,
    clip_global_norm: float | None = None,
    lazy_mode: bool = False,
    multi_precision: bool = False,
) -> paddle.optimizer.Optimizer:
    """Adam; weight decay, if any, is coupled L2 through the gradient."""
    common = _common(model, regularizer, weight_decay, no_weight_decay_name, one_dim_param_no_weight_decay,
                     clip_norm, clip_global_norm)
    return paddle.optimizer.Adam(learning_rate=learning_rate, beta1=beta1, beta2=beta2, epsilon=epsilon,
                                 lazy_mode=lazy_mode, multi_precision=multi_precision, **common)


def AdamW(
    *,
    model: paddle.nn.Layer,
    learning_rate: Any,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
    weight_decay: float | None = None,
    regularizer: Mapping[str, Any] | None = None,
    no_weight_decay_name: str | None = None,
    one_dim_param_no_weight_decay: bool = False,
    clip_norm: float | None = None,
    clip_global_norm: float | None = None,
    multi_precision: bool = False,
    clip_grad: Any = None,
) -> paddle.optimizer.Optimizer:
    """Adam with decoupled weight decay ``weight_decay`` (a coefficient, default none).
    ``clip_grad`` is PaddleClas's key that its AdamW ignores: ignored here too, with a warning."""
    if clip_grad is not None and clip_grad != "None":  # PaddleClas configs write None as the string "None"
        warnings.warn(f"Optimizer.clip_grad: key not used by PaddleClas's AdamW nor by corolla, ignored (found "
                      f"{clip_grad!r}; to clip gradients set clip_norm or clip_global_norm)", UserWarning, stacklevel=2)
    if regularizer is not None:
        raise ConfigError(
            f"Optimizer.regularizer: AdamW decays weights itself; found regularizer {dict(regularizer)!r}, "
            "expected 'weight_decay: COEFF' instead"
        )
    excluded = _no_decay_names(model, no_weight_decay_name, one_dim_param_no_weight_decay)
    return paddle.optimizer.AdamW(
        learning_rate=learning_rate,
        beta1=beta1,
        beta2=beta2,
        epsilon=epsilon,
        parameters=model.parameters(),
        weight_decay=float(weight_decay or 0.0),
        apply_decay_param_fun=lambda name: name not in excluded,
        grad_clip=_grad_clip(clip_norm, clip_global_norm),
        multi_precision=multi_precision,
    )


def RMSProp(
    *,
    model: paddle.nn.Layer,
    learning_rate: Any,
    momentum: float = 0.0,
    rho: float = 0.95,
    epsilon: float = 1e-6,
    centered: bool = False,
    regularizer: Mapping[str, Any] | None = None,
    weight_decay: float | None = None,
    no_weight_decay_name: str | None = None,
    one_dim_param_no_weight_decay: bool = False,
    clip_norm: float | None = None,
    clip_global_norm: float | None = None,
) -> paddle.optimizer.Optimizer:
    """RMSProp with PaddleClas's defaults (``rho`` 0.95, ``epsilon`` 1e-6)."""
    _check_momentum(momentum)
    common = _common(model, regularizer, weight_decay, no_weight_decay_name, one_dim_param_no_weight_decay,
                     clip_norm, clip_global_norm)
    return paddle.optimizer.RMSProp(learning_rate=learning_rate, momentum=momentum, rho=rho, epsilon=epsilon,
                                    centered=centered, **common)


# --- shared pieces -------------------------------------------------------------


def _check_momentum(momentum: float) -> None:
    """A momentum of 1 or more never forgets a step: training diverges (Paddle takes it unchecked)."""
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
        raise ValueError(f"momentum: expected a number from 0 up to (not including) 1, found {momentum!r}")


def _common(
    model: paddle.nn.Layer,
    regularizer: Mapping[str, Any] | None,
    weight_decay: float | None,
    no_weight_decay_name: str | None,
    one_dim_param_no_weight_decay: bool,
    clip_norm: float | None,
    clip_global_norm: float | None,
) -> dict[str, Any]:
    """The ``parameters``, ``weight_decay`` and ``grad_clip`` arguments of a Paddle optimizer."""
    decay = _decay(regularizer, weight_decay)
    return {
        "parameters": _parameter_groups(model, decay, no_weight_decay_name, one_dim_param_no_weight_decay),
        "weight_decay": decay,
        "grad_clip": _grad_clip(clip_norm, clip_global_norm),
    }


def _decay(regularizer: Mapping[str, Any] | None, weight_decay: float | None) -> Any:
    """The gradient-coupled weight decay of ``regularizer`` or ``weight_decay``."""
    if regularizer is None:
        return None if weight_decay is None else paddle.regularizer.L2Decay(float(weight_decay))
    if weight_decay is not None:
        raise ConfigError("Optimizer: give either 'regularizer' or 'weight_decay', not both")
    if not isinstance(regularizer, Mapping) or regularizer.get("name") not in _REGULARIZERS:
        raise ConfigError(
            f"Optimizer.regularizer: expected {{name: L2 or L1, coeff: NUMBER}}, found {regularizer!r}"
        )
    unknown = set(regularizer) - {"name", "coeff"}
    if unknown:
        raise ConfigError(f"Optimizer.regularizer: unknown key(s) {sorted(unknown)}; expected name and coeff")
    coeff = regularizer.get("coeff", 0.0)
    if isinstance(coeff, bool) or not isinstance(coeff, (int, float)) or coeff < 0:
        raise ConfigError(f"Optimizer.regularizer.coeff: expected a number >= 0, found {coeff!r}")
    return _REGULARIZERS[regularizer["name"]](float(coeff))


def _no_decay_names(model: paddle.nn.Layer, words: str | None, one_dim: bool) -> set[str]:
    """Paddle names (``param.name``) of the parameters that get no weight decay."""
    keys = (words or "").split()
    return {
        p.name
        for structured, p in model.named_parameters()
        if any(k in structured for k in keys) or (one_dim and len(p.shape) == 1)
    }


def _parameter_groups(model: paddle.nn.Layer, decay: Any, words: str | None, one_dim: bool) -> list:
    """All parameters, or groups by (weight decay, lr multiplier) when some are
    excluded from weight decay.

    Paddle overwrites each grouped parameter's lr multiplier
    (``optimize_attr["learning_rate"]``) with its group's ``learning_rate``,
    so every group carries the multiplier its parameters had.
    """
    params = model.parameters()
    excluded = _no_decay_names(model, words, one_dim) if decay is not None else set()
    if not excluded:
        return params
    groups: dict[tuple[bool, float], list] = {}
    for p in params:
        groups.setdefault((p.name in excluded, float(p.optimize_attr.get("learning_rate", 1.0))), []).append(p)
    return [
        {"params": members, "learning_rate": multiplier, **({"weight_decay": 0.0} if no_decay else {})}
        for (no_decay, multiplier), members in groups.items()
    ]


def _grad_clip(clip_norm: float | None, clip_global_norm: float | None) -> Any:
    if clip_norm is not None and clip_global_norm is not None:
        raise ConfigError("Optimizer: give either 'clip_norm' or 'clip_global_norm', not both")
    if clip_norm is not None:
        return paddle.nn.ClipGradByNorm(clip_norm=float(clip_norm))
    if clip_global_norm is not None:
        return paddle.nn.ClipGradByGlobalNorm(clip_norm=float(clip_global_norm))
    return None
