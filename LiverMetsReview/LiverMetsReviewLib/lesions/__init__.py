"""Lesions and liver: one click to a 3-D segment, the measurements a reading needs, and Slicer-readable files.

Pure Python (no Slicer import), LPS world coordinates, millimetres. Seed -> segment in ``segment.py``,
measurements in ``measure.py``, files in ``storage.py``.
"""
