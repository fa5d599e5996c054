"""Built-in transforms plugin: registers its components lazily, so listing them imports nothing heavy.

Per-sample transforms work on NumPy arrays (uint8 HWC unless noted) with
NumPy and PIL only; batch transforms work on NCHW float batches.
"""
from corolla.api import hookimpl, lazy

_PACKAGE = __name__

#: module -> the transforms it defines, by PaddleClas name
_TRANSFORMS: dict[str, tuple[str, ...]] = {
    "decode": ("DecodeImage",),
    "geometry": ("ResizeImage", "CropImage", "RandCropImage", "RandFlipImage", "RandomRotation"),
    "color": ("ColorJitter",),
    "normalize": ("NormalizeImage", "ToCHWImage"),
    "erasing": ("RandomErasing", "Cutout", "GridMask", "HideAndSeek"),
    "autoaugment": ("AutoAugment", "RandAugment"),
    "timm_autoaugment": ("TimmAutoAugment",),
    "randaugment_variants": ("RandAugmentV2", "RandAugmentV3"),
    "crops": ("RandomCropImage", "CropImageAtRatio"),
    "pad": ("Padv2",),
    "lighting": ("PCALighting",),
    "labeling": ("BlurImage", "RandomRot90"),
}


@hookimpl
def corolla_transforms() -> dict:
    table: dict = {}
    for module, names in _TRANSFORMS.items():
        table.update(lazy(f"{_PACKAGE}.{module}", *names))
    return table


@hookimpl
def corolla_batch_transforms() -> dict:
    return lazy(f"{_PACKAGE}.batch", "MixupOperator", "CutmixOperator", "OpSampler")
