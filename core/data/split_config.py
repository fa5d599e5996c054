"""A ready-to-train config for a :class:`~corolla.data.split.FolderSplit`: a template config
(``configs/finetune/folder_224.yaml``) with the split's list files, class map and class count."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from corolla.config.load import Config, apply_override, dump_config, load_config
from corolla.data.atomic import write_new_files
from corolla.data.split import FolderSplit
from corolla.plugin.errors import ConfigError


def finetune_config(split: FolderSplit, template: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Config:
    """``template`` pointed at ``split`` (absolute paths), then ``overrides`` (``-o``) applied."""
    config = load_config(template)
    _section(config, "Arch", template)["class_num"] = len(split.class_names)
    for mode, listed in (("Train", split.train_list), ("Eval", split.val_list)):
        dataset = _section(config, f"DataLoader.{mode}.dataset", template)
        dataset["image_root"] = str(split.root.resolve())
        dataset["cls_label_path"] = str(listed.resolve())
        if split.delimiter != " ":
            dataset["delimiter"] = split.delimiter
    _section(config, "Infer", template)["infer_imgs"] = str(split.root.resolve())
    _section(config, "Infer.PostProcess", template)["class_id_map_file"] = str(split.label_list.resolve())
    for override in overrides:
        added = apply_override(config, override)
        if added:
            config.added.append(added)
    return config


def write_config(config: Config, path: str | os.PathLike[str], *, made_by: str) -> Path:
    """Write ``config`` as YAML to ``path`` under a header saying how it was made.

    An existing ``path`` with other contents (your edits, another split) is kept: a :class:`DataError`
    names it.
    """
    path = Path(path)
    text = f"# {made_by}\n# Made from {config.source}; its comments explain each value.\n" + dump_config(config)
    write_new_files({path: text}, writer="data split", instead="Move or delete it to have a new one written, or write "
                    "the new files to another folder with --out FOLDER")
    return path


def _section(config: dict[str, Any], dotted: str, template: str | os.PathLike[str]) -> dict[str, Any]:
    node: Any = config
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        raise ConfigError(f"{template}: {dotted} is missing; a config for a folder split needs "
                          "Arch, DataLoader.Train/Eval.dataset and Infer.PostProcess sections")
    return node
