"""The distilled student embedder: a MobileFaceNet-style network (Chen et al. 2018) made int8-friendly.

Layout (width multiplier `w` scales every channel count, rounded to a multiple of 8):
    conv3x3 s2 (64w) -> depthwise 3x3 (64w)
    -> inverted-residual bottlenecks (expansion t, channels c, repeats n, first stride s):
       (2, 64w, 5, 2), (4, 128w, 1, 2), (2, 128w, 6, 1), (4, 128w, 1, 2), (2, 128w, 2, 1)
    -> conv1x1 (512w) -> GDC: depthwise 7x7 "valid" (linear) -> conv1x1 to 128 -> BN (the embedding).

Activations are ReLU6 everywhere (no PReLU: onnxruntime quantises Conv+Relu/Clip into one int8 op, and
no rewrite like calibration/prelu.py is needed); every conv is followed by BatchNorm, which the ONNX
export folds into the conv. Input: float32 (N, 3, 112, 112), RGB normalised as (x - 127.5) / 128
(contract.STUDENT_MFN, made by edge_runtime/preprocess.contract_input); output: float32 (N, 128) raw
embeddings compared by cosine (not normalised inside the network).
"""
from __future__ import annotations

from torch import nn

from facegate.edge_runtime.contract import STUDENT_MFN as CONTRACT

# (expansion, channels at width 1, repeats, first stride) of the bottleneck stages
STAGES = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


def _ch(c: int, width: float) -> int:
    """Channel count c scaled by `width`, rounded to a multiple of 8 (at least 8)."""
    return max(8, int(round(c * width / 8)) * 8)


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True,
            padding: int | None = None) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> ReLU6 (or linear with act=False)."""
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2 if padding is None else padding, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """Inverted residual: 1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 project (linear), plus the
    input when the shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        mid = cin * expansion
        self.residual = stride == 1 and cin == cout
        self.body = nn.Sequential(conv_bn(cin, mid, 1), conv_bn(mid, mid, 3, stride, groups=mid),
                                  conv_bn(mid, cout, 1, act=False))

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class StudentMFN(nn.Module):
    """float32 (N, 3, 112, 112) normalised chips -> float32 (N, embedding_size) raw embeddings."""

    def __init__(self, width: float = 1.0, embedding_size: int = CONTRACT.embedding_size):
        super().__init__()
        if not 0.125 <= width <= 2.0:
            raise ValueError(f"width multiplier {width} outside [0.125, 2]")
        c0 = _ch(64, width)
        layers = [conv_bn(3, c0, 3, 2), conv_bn(c0, c0, 3, groups=c0)]
        cin = c0
        for t, c, n, s in STAGES:
            cout = _ch(c, width)
            for i in range(n):
                layers.append(Bottleneck(cin, cout, s if i == 0 else 1, t))
                cin = cout
        last = _ch(512, width)
        layers.append(conv_bn(cin, last, 1))
        self.features = nn.Sequential(*layers)
        side = CONTRACT.input_size // 16                   # four stride-2 stages: 112 -> 7
        self.gdc = conv_bn(last, last, side, groups=last, act=False, padding=0)
        self.head = nn.Sequential(nn.Conv2d(last, embedding_size, 1, bias=False), nn.BatchNorm2d(embedding_size))
        self.width = width
        self.embedding_size = embedding_size
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward(self, x):
        return self.head(self.gdc(self.features(x))).flatten(1)


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm weights and biases included, running statistics not)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
