"""Lesions and liver: one click to a 3-D segment, the measurements a reading needs, and Slicer-readable files.

Pure Python (no Slicer import), LPS world coordinates, millimetres. Lesions: seed -> segment in
``segment.py`` (channels in ``channels.py``), measurements in ``measure.py`` (codes and units in
``resources/quantities.json``), files in ``seg_file.py`` (layered .seg.nrrd), ``markups.py`` (.mrk.json) and
``tables.py`` (TSV/JSON); ``review.py`` ties them into ``review_lesions`` + ``write_review``.
"""
