"""Keeping a device healthy: backups of the data home and their restore (backup.py), and the
doctor's checks of bundle, databases, files, clock, camera, door and speed (doctor.py)."""
