"""Pixel normalisation shared by training, export, calibration, enrollment and recognition.

Every model input is made here and nowhere else, so train/serve skew cannot creep in.
"""
from __future__ import annotations

import numpy as np


def channel_constants(values, colour_order: str) -> tuple:
    """Per-channel constants given in the model's colour order ("RGB" or "BGR"), re-ordered to match
    RGB input (one value stays as it is)."""
    if colour_order not in ("RGB", "BGR"):
        raise ValueError(f"unknown colour order {colour_order!r}; expected 'RGB' or 'BGR'")
    v = tuple(values) if np.ndim(values) else (values,)
    return v[::-1] if colour_order == "BGR" and len(v) == 3 else v


def contract_input(images_rgb: np.ndarray, contract) -> np.ndarray:
    """uint8 RGB (H, W, 3) or (N, H, W, 3) -> the float32 batch a model with this input contract
    (mean, std, colour_order, layout: a DetectorContract or EmbedderContract) takes."""
    c = contract
    return to_model_input(images_rgb, channel_constants(c.mean, c.colour_order),
                          channel_constants(c.std, c.colour_order), c.layout, swap_rb=c.colour_order == "BGR")


def to_model_input(images: np.ndarray, mean, std, layout: str = "NCHW", swap_rb: bool = False) -> np.ndarray:
    """Turn uint8 images into a normalised float32 batch.

    Args:
        images: uint8 array, (H, W, 3) or (N, H, W, 3), already in the model's colour order.
        mean: per-channel mean (3 floats) or one float, in the images' colour order.
        std: per-channel divisor (3 floats) or one float.
        layout: "NCHW" (default) or "NHWC".
        swap_rb: reverse the channel order on the way (RGB images into a BGR model), with no copy.

    Returns:
        float32 array (N, 3, H, W) for NCHW or (N, H, W, 3) for NHWC, equal to (x - mean) / std.

    Example:
        >>> x = to_model_input(np.zeros((150, 150, 3), np.uint8), [122.782, 117.001, 104.298], 256.0)
        >>> x.shape
        (1, 3, 150, 150)
    """
    if images.dtype != np.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) images, got shape {images.shape}")
    mean = np.broadcast_to(np.asarray(mean, np.float32).reshape(-1), (3,))
    std = np.broadcast_to(np.asarray(std, np.float32).reshape(-1), (3,))
    order = (2, 1, 0) if swap_rb else (0, 1, 2)
    if layout == "NHWC":
        return np.ascontiguousarray((images[..., order].astype(np.float32) - mean[list(order)]) / std[list(order)])
    if layout != "NCHW":
        raise ValueError(f"unknown layout {layout!r}; expected 'NCHW' or 'NHWC'")
    # one channel plane at a time: no float copy of the whole HWC image and no transpose
    n, h, w, _ = images.shape
    x = np.empty((n, 3, h, w), np.float32)
    for dst, src in enumerate(order):
        np.subtract(images[..., src], mean[src], out=x[:, dst], dtype=np.float32)
        np.divide(x[:, dst], std[src], out=x[:, dst])
    return x
