"""Lesions and the liver: one click to a 3-D segment, the liver mask, Couinaud segments, measurements.

Pure core (no Slicer): functions of images (role -> SimpleITK image, LPS) and seed points (LPS mm).
"""
