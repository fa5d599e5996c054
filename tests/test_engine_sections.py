"""The engine's config sections: AMP (and seed 002's fp16 flags), EMA, Global additions."""
from __future__ import annotations

import pytest

from corolla.plugin.errors import ConfigError
from corolla.config.sections import AmpSection, read_amp, read_ema, read_global


def amp_of(config: dict) -> AmpSection | None:
    return read_amp(config, read_global(config))


def test_seed_002_fp16_flags_mean_an_o1_amp_section():
    assert amp_of({"Global": {"fp16": True, "scale_loss": 8.0}}) == AmpSection(scale_loss=8.0, level="O1")
    assert amp_of({"Global": {"scale_loss": 8.0}}) is None  # scale_loss alone turns nothing on
    assert amp_of({}) is None


def test_an_amp_section_wins_and_can_be_switched_off():
    config = {"Global": {"fp16": True}, "AMP": {"level": "O2", "dtype": "bfloat16", "use_dynamic_loss_scaling": True}}
    amp = amp_of(config)
    assert (amp.level, amp.dtype, amp.use_dynamic_loss_scaling, amp.scale_loss) == ("O2", "bfloat16", True, 1.0)
    assert amp_of({"AMP": {"use_amp": False, "level": "O1"}}) is None


def test_bad_amp_and_ema_values_name_the_key():
    with pytest.raises(ConfigError, match=r"AMP.level: expected one of 'O1', 'O2', found 'O3'"):
        amp_of({"AMP": {"level": "O3"}})
    with pytest.raises(ConfigError, match=r"AMP.scale_los: unknown key. Did you mean 'scale_loss'"):
        amp_of({"AMP": {"scale_los": 8}})
    with pytest.raises(ConfigError, match=r"EMA.decay: expected a number between 0 and 1 \(exclusive\), found 1.5"):
        read_ema({"EMA": {"decay": 1.5}})
    assert read_ema({"EMA": {}}).decay == 0.9999 and read_ema({}) is None


def test_global_keys_of_the_seed_configs():
    settings = read_global({"Global": {"class_num": 102, "start_eval_epoch": 10, "save_inference_dir": "./x",
                                       "use_visualdl": False, "image_shape": [3, 192, 192]}})
    assert (settings.class_num, settings.start_eval_epoch, settings.image_shape) == (102, 10, [3, 192, 192])
    with pytest.warns(UserWarning, match="Global.use_dali: key not used by corolla"):
        read_global({"Global": {"use_dali": False}})
    with pytest.raises(ConfigError, match=r"Global.epochs: expected an integer >= 1, found 0"):
        read_global({"Global": {"epochs": 0}})
