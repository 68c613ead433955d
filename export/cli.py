"""Handler for `facegate export`."""
from __future__ import annotations

from pathlib import Path

SAMPLE_IMAGES = ("faceapi_bbt_scenes/bbt1.jpg", "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
                 "videos/face_recognition/lin-manuel-miranda.png")


def sample_images(images: list[Path] | None) -> list[Path]:
    """The user's images, or a few real faces from $FACEGATE_DATA. Raises FileNotFoundError."""
    from facegate.main import data_dir

    if images:
        return images
    paths = [data_dir() / s for s in SAMPLE_IMAGES]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"sample images not found ({missing[0]}); pass --images or set FACEGATE_DATA")
    return paths


def cmd_export(args) -> int:
    from facegate.models.registry import list_models

    from .onnx_export import export_model

    imgs = sample_images(args.images)
    for name in args.names or list_models():
        r = export_model(name, args.out / f"{name}.onnx", imgs, weights=args.weights)
        print(f"{name}: {r.path}  onnxruntime vs PyTorch max diff {r.max_abs_diff:.2e} "
              f"on {r.inputs_compared} real inputs (limit 1e-4)")
    return 0
