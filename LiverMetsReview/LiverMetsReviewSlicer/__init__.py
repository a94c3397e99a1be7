"""Slicer side of LiverMetsReview: the MRML edge between Slicer's scene and the headless core.

Everything here may import ``slicer``; nothing in ``LiverMetsReviewLib`` may. Conversions happen once, here:
SimpleITK images (LPS) <-> volume nodes (RAS) via ``sitkUtils``, labelmaps + segment lists <-> segmentation
nodes, series metadata <-> node attributes.
"""
