"""Numpy-only reader for dlib's serialized DNN files (the face-recognition ResNet `.dat`).

dlib writes a network by serializing the outermost layer first, each wrapper writing its version
number and then its sub-network *before* its own layer details. So a file is:

    loss layer:   int version (1), str "loss_metric_2", float margin, float distance_threshold
    wrappers:     one int per wrapper, outside in: 2 = add_layer, 1 = tag/skip layer,
                  3 = the innermost add_layer (the one sitting on the input layer)
    input layer:  str "input_rgb_image_sized", float mean R, G, B, int rows, int cols
    layers:       for every add_layer, input side first: the layer details (a name string plus
                  its fields), then bool x3 and three (empty) tensors; the innermost add_layer
                  also writes its sample-expansion factor (int).

Primitive encodings: an int is one control byte (low 4 bits: byte count, 0x80: negative) then
the magnitude little-endian; a float is int mantissa then int exponent (value = m * 2**e); a
string is int length then bytes; a bool is the ASCII byte '0' or '1'; a tensor is int version
(2), int num_samples, k, nr, nc, then that many little-endian float32; an alias tensor (a shape
view into a layer's flat parameter tensor) is int version (1) then the four dims.

The reader follows this grammar exactly, so a truncated or otherwise malformed file raises
ValueError instead of yielding shifted weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PARAM_KINDS = ("con", "affine", "fc")


class _Stream:
    """Bounds-checked cursor over the file's bytes; every failure is a ValueError naming the offset."""

    def __init__(self, data: bytes, name: str):
        self.data, self.pos, self.name = data, 0, name

    def fail(self, what: str) -> ValueError:
        return ValueError(f"truncated/corrupt dlib file {self.name}: {what} (at byte {self.pos} of {len(self.data)})")

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"unexpected end of data reading {n} bytes")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        ctrl = self.take(1)[0]
        size = ctrl & 0x0F
        if ctrl & 0x70 or size > 8:
            raise self.fail(f"bad integer control byte 0x{ctrl:02x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if ctrl & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return float(mantissa) * 2.0 ** exponent if abs(exponent) < 32000 else float("nan")

    def str(self) -> str:
        n = self.int()
        if not 0 <= n <= 256:
            raise self.fail(f"implausible string length {n}")
        return self.take(n).decode("latin-1")

    def bool(self) -> bool:
        c = self.take(1)
        if c not in (b"0", b"1"):
            raise self.fail(f"bad bool byte {c!r}")
        return c == b"1"

    def dims(self, version: int) -> tuple[int, int, int, int]:
        v = self.int()
        if v != version:
            raise self.fail(f"expected tensor version {version}, got {v}")
        d = tuple(self.int() for _ in range(4))
        if min(d) < 0:
            raise self.fail(f"negative tensor dims {d}")
        return d

    def tensor(self) -> np.ndarray:
        """A dlib tensor: float32 array of shape (num_samples, k, nr, nc)."""
        d = self.dims(2)
        n = int(np.prod(d, dtype=np.int64))
        return np.frombuffer(self.take(4 * n), "<f4").astype(np.float32).reshape(d)

    def alias(self) -> tuple[int, int, int, int]:
        return self.dims(1)


@dataclass
class DlibLayer:
    """One add_layer's details: `kind` is the name string without its version suffix.

    arrays: float32 parameters (see read_dlib_resnet_params for shapes); attrs: ints such as
    stride/padding/window, as stored.
    """

    kind: str
    arrays: list[np.ndarray] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)


def _split(s: _Stream, params: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """Cut a flat parameter tensor into consecutive arrays of the given shapes; sizes must add up."""
    flat = params.reshape(-1)
    sizes = [int(np.prod(sh, dtype=np.int64)) for sh in shapes]
    if sum(sizes) != flat.size:
        raise s.fail(f"parameter tensor has {flat.size} values, aliases need {sum(sizes)}")
    offsets = np.cumsum([0] + sizes)
    return [flat[a:b].reshape(sh) for a, b, sh in zip(offsets, offsets[1:], shapes)]


def _read_con(s: _Stream) -> DlibLayer:
    """con_4: weights (out, in, kh, kw) float32, bias (out,) float32."""
    params = s.tensor()
    keys = ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
    attrs = {k: s.int() for k in keys}
    filters, biases = s.alias(), s.alias()
    for _ in range(4):  # learning-rate / weight-decay multipliers
        s.float()
    if filters[0] != attrs["num_filters"] or filters[2:] != (attrs["nr"], attrs["nc"]):
        raise s.fail(f"conv filter shape {filters} disagrees with {attrs}")
    w, b = _split(s, params, [filters, (attrs["num_filters"],)])
    if biases[0] * biases[1] * biases[2] * biases[3] != b.size:
        raise s.fail(f"conv bias alias {biases} does not hold {b.size} values")
    return DlibLayer("con", [w, b], attrs)


def _read_affine(s: _Stream) -> DlibLayer:
    """affine_: gamma (C,) float32, beta (C,) float32 (a frozen batch-norm: y = gamma * x + beta)."""
    params = s.tensor()
    gamma, beta = s.alias(), s.alias()
    mode = s.int()
    if gamma != beta or mode != 0 or gamma[0] != 1 or gamma[2:] != (1, 1):
        raise s.fail(f"expected per-channel (conv mode) affine, got gamma {gamma} beta {beta} mode {mode}")
    return DlibLayer("affine", _split(s, params, [(gamma[1],), (gamma[1],)]), {"mode": mode})


def _read_fc(s: _Stream) -> DlibLayer:
    """fc_2: weights (in, out) float32 [then bias (out,) float32 when the layer has one]."""
    n_out, n_in = s.int(), s.int()
    params = s.tensor()
    weights, biases = s.alias(), s.alias()
    bias_mode = s.int()  # 0: FC_HAS_BIAS, 1: FC_NO_BIAS
    for _ in range(4):
        s.float()
    if weights[:2] != (n_in, n_out) or weights[2:] != (1, 1) or bias_mode not in (0, 1):
        raise s.fail(f"fc weights alias {weights} / bias mode {bias_mode} disagree with {n_in}->{n_out}")
    shapes = [(n_in, n_out)] + ([(n_out,)] if bias_mode == 0 else [])
    return DlibLayer("fc", _split(s, params, shapes), {"num_inputs": n_in, "num_outputs": n_out})


def _read_pool(kind: str):
    def read(s: _Stream) -> DlibLayer:
        keys = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        return DlibLayer(kind, [], {k: s.int() for k in keys})
    return read


_LAYER_READERS = {
    "con_4": _read_con,
    "affine_": _read_affine,
    "fc_2": _read_fc,
    "max_pool_2": _read_pool("max_pool"),
    "avg_pool_2": _read_pool("avg_pool"),
    "relu_": lambda s: DlibLayer("relu"),
    "add_prev_": lambda s: DlibLayer("add_prev"),
}


def _read_layer(s: _Stream, innermost: bool) -> DlibLayer:
    """One add_layer's details followed by its training-state trailer (checked to be well formed)."""
    name = s.str()
    if name not in _LAYER_READERS:
        raise s.fail(f"unsupported or garbled layer name {name!r}")
    layer = _LAYER_READERS[name](s)
    for _ in range(3):
        s.bool()
    for _ in range(3):  # x_grad, cached_output, params_grad: empty in a saved model
        s.tensor()
    if innermost:
        s.int()  # sample expansion factor
    return layer


def read_dlib_layers(path: str | Path) -> tuple[dict, list[DlibLayer]]:
    """Parse a whole dlib metric-loss network file.

    Returns:
        (header, layers): header holds "loss", "margin", "distance_threshold", "input",
        "mean" (3 floats, RGB), "rows", "cols"; layers lists every add_layer, input side first.

    Raises:
        ValueError: the file is truncated, corrupt, or holds a layer type this reader doesn't know.
    """
    s = _Stream(Path(path).read_bytes(), str(path))
    if s.int() != 1:
        raise s.fail("expected loss-layer version 1")
    header = {"loss": s.str()}
    if header["loss"] != "loss_metric_2":
        raise s.fail(f"expected loss 'loss_metric_2', got {header['loss']!r}")
    header["margin"], header["distance_threshold"] = s.float(), s.float()
    n_layers = 0
    while True:
        v = s.int()
        if v not in (1, 2, 3):
            raise s.fail(f"bad layer-wrapper version {v}")
        n_layers += v != 1
        if v == 3:
            break
    header["input"] = s.str()
    if header["input"] != "input_rgb_image_sized":
        raise s.fail(f"expected input layer 'input_rgb_image_sized', got {header['input']!r}")
    header["mean"] = tuple(s.float() for _ in range(3))
    header["rows"], header["cols"] = s.int(), s.int()
    layers = [_read_layer(s, innermost=i == 0) for i in range(n_layers)]
    if s.pos != len(s.data):
        raise s.fail(f"{len(s.data) - s.pos} unexpected trailing bytes")
    return header, layers


def read_dlib_resnet_params(path: str | Path) -> list[tuple[str, list[np.ndarray]]]:
    """The parameterised layers of a dlib network file, input side first.

    Returns:
        list of (kind, arrays), all arrays float32:
          "con":    [weights (out, in, kh, kw), bias (out,)]
          "affine": [gamma (C,), beta (C,)]
          "fc":     [weights (in, out)] (plus bias (out,) if the layer has one; the face ResNet's doesn't)
        For dlib_face_recognition_resnet_model_v1.dat: 59 entries (29 con, 29 affine, 1 fc).

    Raises:
        ValueError: truncated/corrupt file (message says so and gives the byte offset).
    """
    _, layers = read_dlib_layers(path)
    return [(l.kind, l.arrays) for l in layers if l.kind in PARAM_KINDS]
