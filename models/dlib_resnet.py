"""dlib's face-recognition ResNet (dlib_face_recognition_resnet_model_v1) as a readable PyTorch module.

Reproduces `dlib.face_recognition_model_v1.compute_face_descriptor` on a 150x150 aligned chip.
Architecture (dlib's `anet_type`, written here input side first):

    stem:   conv 7x7/2 (no padding, 3->32) - affine - ReLU - max-pool 3x3/2 (no padding)
    blocks: 3 x (32->32), down (32->64), 3 x (64->64), down (64->128), 2 x (128->128),
            down (128->256), 2 x (256->256), down (256->256)
    head:   mean over space, fc 256->128 (no bias)

A block is conv3x3 - affine - ReLU - conv3x3 - affine, plus the shortcut, then ReLU. In a down
block the first conv has stride 2 and no padding and the shortcut is a 2x2/2 average pool; when
the branches differ in channels or size, the smaller is zero-padded at the end (dlib's add_prev).
"affine" is dlib's frozen batch-norm: a per-channel scale and shift.

Input contract: RGB chips, 150x150, normalised as (x - MEAN) / STD outside the module
(`facegate.edge_runtime.preprocess.to_model_input(chips, MEAN, STD)`). The output is dlib's raw
descriptor (not L2-normalised); dlib calls two faces the same person below Euclidean distance 0.6.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facegate.edge_runtime.contract import DLIB_RESNET as CONTRACT

from .dlib_format import read_dlib_resnet_params

# The input contract lives in facegate.edge_runtime.contract; these names are views of it.
INPUT_SIZE = CONTRACT.input_size
MEAN = CONTRACT.mean
STD = CONTRACT.std
EMBEDDING_SIZE = CONTRACT.embedding_size
COLOR_ORDER = CONTRACT.colour_order
SAME_PERSON_DISTANCE = -CONTRACT.threshold  # dlib's threshold on the Euclidean distance

# (in_channels, out_channels, down) of the residual blocks, input side first.
_BLOCKS = ([(32, 32, False)] * 3 + [(32, 64, True)] + [(64, 64, False)] * 3 + [(64, 128, True)]
           + [(128, 128, False)] * 2 + [(128, 256, True)] + [(256, 256, False)] * 2 + [(256, 256, True)])


class Affine(nn.Module):
    """Per-channel y = gamma * x + beta on (N, C, H, W) float32; dlib's `affine` (frozen batch-norm)."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


class ResidualBlock(nn.Module):
    """(N, cin, H, W) -> (N, cout, H', W'); H' = H, or H // 2 for a down block."""

    def __init__(self, cin: int, cout: int, down: bool = False):
        super().__init__()
        self.down = down
        stride, padding = (2, 0) if down else (1, 1)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding)
        self.affine1 = Affine(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.affine2 = Affine(cout)
        self.shortcut = nn.AvgPool2d(2, 2) if down else nn.Identity()
        self.extra_channels = cout - cin  # zero channels appended to the shortcut (dlib add_prev)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        s = self.shortcut(x)
        if self.extra_channels:
            s = F.pad(s, (0, 0, 0, 0, 0, self.extra_channels))
        if self.down:
            # dlib add_prev pads the smaller branch with zeros at the end. The 2x2/2 pool gives
            # floor(H/2), the 3x3/2 unpadded conv floor((H-1)/2): 1 px less when H is even.
            # Pad-then-crop keeps that free of shape-dependent Python branches (ONNX-friendly).
            y = F.pad(y, (0, 1, 0, 1))[:, :, : s.shape[2], : s.shape[3]]
        return F.relu(y + s)


class DlibResNet(nn.Module):
    """float32 (N, 3, 150, 150) normalised RGB -> float32 (N, 128) dlib face descriptors."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, 2, 0)
        self.affine = Affine(32)
        self.pool = nn.MaxPool2d(3, 2, 0)
        self.blocks = nn.Sequential(*(ResidualBlock(cin, cout, down) for cin, cout, down in _BLOCKS))
        self.fc = nn.Linear(256, EMBEDDING_SIZE, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.affine(self.conv(x))))
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))

    def _targets(self) -> list[tuple[str, list[torch.Tensor]]]:
        """This module's parameters in the dlib file's order, as (kind, tensors) like the reader's."""
        out = [("con", [self.conv.weight, self.conv.bias]), ("affine", [self.affine.gamma, self.affine.beta])]
        for b in self.blocks:
            out += [("con", [b.conv1.weight, b.conv1.bias]), ("affine", [b.affine1.gamma, b.affine1.beta]),
                    ("con", [b.conv2.weight, b.conv2.bias]), ("affine", [b.affine2.gamma, b.affine2.beta])]
        return out + [("fc", [self.fc.weight])]

    @torch.no_grad()
    def load_dat(self, path: str | Path) -> "DlibResNet":
        """Copy the weights of a dlib `.dat` file in; checks every layer's kind and shape.

        Raises:
            ValueError: the file is corrupt/truncated or isn't this architecture.
        """
        blocks = read_dlib_resnet_params(path)
        targets = self._targets()
        if len(blocks) != len(targets):
            raise ValueError(f"{path}: {len(blocks)} parameter layers, expected {len(targets)}")
        for i, ((kind, arrays), (want_kind, tensors)) in enumerate(zip(blocks, targets)):
            if kind == "fc" and len(arrays) == 1:
                arrays = [arrays[0].T]  # dlib stores (in, out); nn.Linear wants (out, in)
            shapes = [tuple(a.shape) for a in arrays]
            wanted = [tuple(t.shape) for t in tensors]
            if kind != want_kind or shapes != wanted:
                raise ValueError(f"{path}: layer {i} is {kind} {shapes}, expected {want_kind} {wanted}")
            for t, a in zip(tensors, arrays):
                t.copy_(torch.from_numpy(np.ascontiguousarray(a)))
        return self

    @classmethod
    def from_dat(cls, path: str | Path) -> "DlibResNet":
        """A DlibResNet in eval mode with the weights of dlib_face_recognition_resnet_model_v1.dat."""
        return cls().load_dat(path).eval()
