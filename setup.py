from setuptools import setup
setup(name="facegate", version="0.1.0",
      packages=["facegate", "facegate.models", "facegate.export", "facegate.calibration", "facegate.edge_runtime"],
      package_dir={"facegate": "cli", "facegate.models": "models", "facegate.export": "export",
                   "facegate.calibration": "calibration", "facegate.edge_runtime": "edge_runtime"})
