"""MiniFASNet (minivision Silent-Face-Anti-Spoofing, Apache-2.0) as a readable PyTorch module.

Liveness / presentation-attack detection: two small networks judge one face, each on its own crop of
the image around the face box (docs/liveness.md):

- MiniFASNetV2 on the box enlarged 2.7x (`2.7_80x80_MiniFASNetV2.pth`);
- MiniFASNetV1SE on the box enlarged 4.0x (`4_0_0_80x80_MiniFASNetV1SE.pth`).

Each crop is resized to 80x80 and fed as **BGR, raw 0..255 float, NCHW, no mean/std** (upstream's
test transform is a ToTensor that does not divide by 255). Each network gives 3 logits; softmax;
class 1 = real, 0 and 2 = attack. The two softmaxes are averaged; the liveness score is the averaged
probability of class 1.

The weights are user-supplied data (the upstream repository's `resources/anti_spoof_models/`, or
`$FACEGATE_DATA/weights/minifasnet/`); they are never part of this repository.

The graph (read from the state dicts' names and shapes, as in upstream's MiniFASNet.py):

    conv1      3x3 s2 conv unit (conv -> BN -> PReLU), 3 -> 32           80 -> 40
    conv2_dw   3x3 depthwise conv unit, 32                               40
    conv_23    inverted bottleneck (1x1 expand, 3x3 dw s2, 1x1 project) 32 -> 64, 40 -> 20
    conv_3     4 residual bottlenecks at 64                              20
    conv_34    bottleneck s2, 64 -> 128                                  20 -> 10
    conv_4     6 residual bottlenecks at 128                             10
    conv_45    bottleneck s2, 128 -> 128                                 10 -> 5
    conv_5     2 residual bottlenecks at 128                             5
    conv_6_sep 1x1 conv unit 128 -> 512; conv_6_dw 5x5 depthwise conv + BN (no PReLU)   5 -> 1
    linear (512 -> 128, no bias) -> BN1d -> prob (128 -> 3, no bias)

The expansion widths are pruned per block (the table below). In V1SE the last residual block of
each of conv_3, conv_4 and conv_5 carries a squeeze-and-excitation module (reduction 4) applied after
the projection, before the residual sum. The `FTGenerator.*` keys some checkpoints carry (the
Fourier-spectrum auxiliary branch, training only) are dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facegate.edge_runtime.contract import LIVENESS, LivenessContract
from facegate.edge_runtime.face import Face
from facegate.edge_runtime.liveness import contract_crop, crop_box, prepare  # noqa: F401  (crop_box: re-exported)

INPUT_SIZE = 80
NUM_CLASSES = 3
REAL_CLASS = 1
COLOR_ORDER = "BGR"
V2_FILE = "2.7_80x80_MiniFASNetV2.pth"
V1SE_FILE = "4_0_0_80x80_MiniFASNetV1SE.pth"


@dataclass(frozen=True)
class Variant:
    """One MiniFASNet checkpoint: its file, crop scale and the pruned expansion width of each block."""

    name: str
    file: str
    scale: float
    contract: str             # its contract's name (edge_runtime.contract.LIVENESS)
    conv_23: int
    conv_3: tuple[int, ...]
    conv_34: int
    conv_4: tuple[int, ...]
    conv_45: int
    conv_5: tuple[int, ...]
    se: bool


V2 = Variant("MiniFASNetV2", V2_FILE, 2.7, "minifasnet_v2", 103, (13, 13, 13, 13), 231,
             (231, 52, 26, 77, 26, 26), 308, (26, 26), se=False)
V1SE = Variant("MiniFASNetV1SE", V1SE_FILE, 4.0, "minifasnet_v1se", 103, (13, 26, 13, 52), 231,
               (154, 52, 26, 52, 26, 26), 308, (26, 26), se=True)
VARIANTS = (V2, V1SE)


class ConvUnit(nn.Module):
    """conv (no bias) -> BN -> optional per-channel PReLU (upstream's Conv_block / Linear_block)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, padding: int = 0,
                 groups: int = 1, prelu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout) if prelu else None

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.prelu(x) if self.prelu is not None else x


class SqueezeExcite(nn.Module):
    """x * sigmoid(BN(fc2(ReLU(BN(fc1(avgpool(x))))))), the fcs as 1x1 convs without bias."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        mid = channels // reduction
        self.fc1 = nn.Conv2d(channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.fc2 = nn.Conv2d(mid, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        w = x.mean(dim=(2, 3), keepdim=True)
        w = torch.relu(self.bn1(self.fc1(w)))
        return x * torch.sigmoid(self.bn2(self.fc2(w)))


class Bottleneck(nn.Module):
    """1x1 expand (conv unit) -> 3x3 depthwise (conv unit, stride) -> 1x1 project (conv + BN)
    [-> SE] [+ input when residual] (upstream's Depth_Wise / Depth_Wise_SE)."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int, residual: bool, se: bool = False):
        super().__init__()
        self.residual = residual
        self.conv = ConvUnit(cin, mid, 1)
        self.conv_dw = ConvUnit(mid, mid, 3, stride, 1, groups=mid)
        self.project = ConvUnit(mid, cout, 1, prelu=False)
        self.se_module = SqueezeExcite(cout) if se else None

    def forward(self, x):
        y = self.project(self.conv_dw(self.conv(x)))
        if self.se_module is not None:
            y = self.se_module(y)
        return x + y if self.residual else y


class ResidualStage(nn.Module):
    """Residual bottlenecks at constant width; with `se`, the last one has SE."""

    def __init__(self, channels: int, mids: tuple[int, ...], se: bool):
        super().__init__()
        self.model = nn.Sequential(*[
            Bottleneck(channels, m, channels, 1, residual=True, se=se and i == len(mids) - 1)
            for i, m in enumerate(mids)])

    def forward(self, x):
        return self.model(x)


class MiniFASNet(nn.Module):
    """One MiniFASNet: (N, 3, 80, 80) BGR 0..255 float -> (N, 3) logits (class 1 = real)."""

    def __init__(self, variant: Variant = V2):
        super().__init__()
        v = variant
        self.variant = v
        self.conv1 = ConvUnit(3, 32, 3, 2, 1)
        self.conv2_dw = ConvUnit(32, 32, 3, 1, 1, groups=32)
        self.conv_23 = Bottleneck(32, v.conv_23, 64, 2, residual=False)
        self.conv_3 = ResidualStage(64, v.conv_3, v.se)
        self.conv_34 = Bottleneck(64, v.conv_34, 128, 2, residual=False)
        self.conv_4 = ResidualStage(128, v.conv_4, v.se)
        self.conv_45 = Bottleneck(128, v.conv_45, 128, 2, residual=False)
        self.conv_5 = ResidualStage(128, v.conv_5, v.se)
        self.conv_6_sep = ConvUnit(128, 512, 1)
        k = (INPUT_SIZE + 15) // 16  # upstream's get_kernel: 5 for 80x80
        self.conv_6_dw = ConvUnit(512, 512, k, groups=512, prelu=False)
        self.linear = nn.Linear(512, 128, bias=False)
        self.bn = nn.BatchNorm1d(128)
        self.prob = nn.Linear(128, NUM_CLASSES, bias=False)

    def forward(self, x):
        for layer in (self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34, self.conv_4,
                      self.conv_45, self.conv_5, self.conv_6_sep, self.conv_6_dw):
            x = layer(x)
        return self.prob(self.bn(self.linear(x.flatten(1))))


def clean_state_dict(sd: dict) -> dict:
    """Strip DataParallel's 'module.' prefix and drop the training-only FTGenerator branch."""
    out = {}
    for k, v in sd.items():
        k = k[len("module."):] if k.startswith("module.") else k
        if not k.startswith("FTGenerator."):
            out[k] = v
    return out


def load(weights: str | Path, variant: Variant | None = None) -> MiniFASNet:
    """One checkpoint (a .pth file, or the folder holding it for `variant`) loaded strictly, in eval mode.
    The variant is taken from the file name when not given."""
    p = Path(weights)
    if variant is None:
        if p.is_dir():
            raise ValueError("give the variant when weights is a folder")
        matches = [v for v in VARIANTS if p.name == v.file or v.name in p.name]
        if len(matches) != 1:
            raise ValueError(f"cannot tell the MiniFASNet variant from the file name {p.name!r}")
        variant = matches[0]
    if p.is_dir():
        p = p / variant.file
    if not p.is_file():
        raise FileNotFoundError(f"MiniFASNet weights not found: {p}")
    sd = torch.load(p, map_location="cpu", weights_only=False)
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    model = MiniFASNet(variant)
    model.load_state_dict(clean_state_dict(sd), strict=True)
    return model.eval()


def contract_of(variant: Variant) -> LivenessContract:
    """The runtime's input contract of one variant (edge_runtime.contract.LIVENESS)."""
    return LIVENESS[variant.contract]


def crops(image_rgb: np.ndarray, box_xyxy, variants=VARIANTS) -> np.ndarray:
    """The model inputs of one face: (len(variants), 3, 80, 80) float32, BGR, 0..255, one crop per variant
    (the runtime's crop and pre-processing, edge_runtime/liveness.py, with each variant's contract)."""
    face = Face(np.asarray(box_xyxy, np.float32), np.zeros((5, 2), np.float32), 1.0)
    return np.concatenate([prepare(contract_crop(image_rgb, face, contract_of(v))[None], contract_of(v))
                           for v in variants])


class Liveness:
    """Both MiniFASNets: liveness(image_rgb, box) -> probability that the face is real (0..1)."""

    def __init__(self, weights_dir: str | Path):
        self.models = [load(weights_dir, v) for v in VARIANTS]

    def probabilities(self, image_rgb: np.ndarray, box_xyxy) -> np.ndarray:
        """The averaged softmax (3,) of the two networks on their crops of one face."""
        x = torch.from_numpy(crops(image_rgb, box_xyxy, [m.variant for m in self.models]))
        with torch.inference_mode():
            p = [torch.softmax(m(x[i:i + 1]), dim=1)[0] for i, m in enumerate(self.models)]
        return torch.stack(p).mean(0).numpy()

    def __call__(self, image_rgb: np.ndarray, box_xyxy) -> float:
        return float(self.probabilities(image_rgb, box_xyxy)[REAL_CLASS])
