"""Volume nodes <-> SimpleITK images, and LPS <-> RAS world coordinates.

The core works in LPS (as DICOM and ITK); Slicer's scene is RAS. ``sitkUtils`` converts the geometry when it
pushes or pulls a volume; points are converted here, in one place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import SimpleITK as sitk
import sitkUtils
import slicer
import vtk


def lpsToRas(point: Sequence[float]) -> tuple[float, float, float]:
    """LPS and RAS differ by the sign of the first two axes."""
    return (-float(point[0]), -float(point[1]), float(point[2]))


rasToLps = lpsToRas  # the flip is its own inverse


def pushImage(image: sitk.Image, name: str) -> slicer.vtkMRMLScalarVolumeNode:
    """A new scalar volume node holding ``image`` (pixels copied, geometry converted LPS -> RAS).

    The node name is ``name`` made unique in the scene (a second phantom gets ``t2_1``...).
    """
    return sitkUtils.PushVolumeToSlicer(image, name=name, className="vtkMRMLScalarVolumeNode")


def pushLabelmap(image: sitk.Image, name: str) -> slicer.vtkMRMLLabelMapVolumeNode:
    """A new labelmap volume node holding the integer ``image``."""
    return sitkUtils.PushVolumeToSlicer(sitk.Cast(image, sitk.sitkInt16), name=name,
                                        className="vtkMRMLLabelMapVolumeNode")


def pullImage(node: slicer.vtkMRMLScalarVolumeNode) -> sitk.Image:
    """The node's voxels as a SimpleITK image in LPS: what the core functions take."""
    return sitkUtils.PullVolumeFromSlicer(node)


def showAutoWindowLevel(node: slicer.vtkMRMLScalarVolumeNode) -> None:
    """MR intensities have no fixed window: let Slicer pick one from the histogram."""
    node.CreateDefaultDisplayNodes()
    displayNode = node.GetScalarVolumeDisplayNode()
    if displayNode:
        displayNode.AutoWindowLevelOn()


def worldLpsToIjk(node: slicer.vtkMRMLScalarVolumeNode, pointLps: Sequence[float]) -> tuple[int, int, int]:
    """Voxel index (i, j, k) of an LPS world point in ``node``, rounded to the nearest voxel centre."""
    rasToIjk = vtk.vtkMatrix4x4()
    node.GetRASToIJKMatrix(rasToIjk)
    ijk = rasToIjk.MultiplyPoint([*lpsToRas(pointLps), 1.0])
    return tuple(int(math.floor(v + 0.5)) for v in ijk[:3])  # halves round up, as ITK's physical-point lookup


def gridSummary(node: slicer.vtkMRMLScalarVolumeNode) -> str:
    """Matrix and voxel size in one short text for the series table."""
    imageData = node.GetImageData()
    dims = imageData.GetDimensions() if imageData else (0, 0, 0)
    spacing = node.GetSpacing()
    return "{}x{}x{}, {:.2g}x{:.2g}x{:.2g} mm".format(*dims, *spacing)
