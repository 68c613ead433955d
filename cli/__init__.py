"""facegate: on-device face recognition for a door, a photo gallery and an admin page.

Sub-packages: `facegate.edge_runtime` (numpy/OpenCV/onnxruntime, runs on the device),
`facegate.models` (PyTorch networks), `facegate.export`, `facegate.calibration`.
"""
__version__ = "0.1.0"
