"""LiverMetsReview core: headless computation and decision logic.

This package never imports ``slicer``, ``qt`` or ``ctk``: the same functions serve the
``livermets`` command line, the pytest suites and the Slicer module (which converts MRML
nodes to ``SimpleITK.Image`` at its edge). World coordinates inside the core are LPS.
"""

__version__ = "0.1.0"
