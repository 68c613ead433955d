"""Benchmarks and evaluation protocols (LFW, open set, WIDER, speed, the OpenCV Zoo peer, the door's
operating point). Never imported by device code; may use tqdm and matplotlib."""
