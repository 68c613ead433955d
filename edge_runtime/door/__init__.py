"""The door: camera sources, the k-of-n decision, the door actuators and the run loop."""
