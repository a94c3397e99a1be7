"""Volume nodes <-> SimpleITK images, and LPS <-> RAS world coordinates.

The core works in LPS (as DICOM and ITK); Slicer's scene is RAS. ``sitkUtils`` converts the geometry when it
pushes or pulls a volume; points are converted here, in one place.

Every image the core gets is in world coordinates, where the views show it: a volume under a linear parent transform
(a series registered by a transform, e.g. the DWI moved onto the HBP) is pulled as hardening would leave it.
``sitkUtils.PullVolumeFromSlicer`` reads the node's own IJK-to-RAS matrix only (read in Slicer v5.10.0 and v5.12.3,
Base/Python/sitkUtils.py), so the transform is applied here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
import sitkUtils
import slicer
import vtk

from LiverMetsReviewLib.errors import LiverMetsError

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


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


def _array(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def ijkToWorldRas(node: slicer.vtkMRMLScalarVolumeNode) -> np.ndarray:
    """4x4 voxel index -> world RAS of the volume as the views show it (its parent transforms applied).

    A linear transform to world multiplies the IJK-to-RAS matrix, as ``vtkMRMLTransformableNode::HardenTransform``
    and ``vtkMRMLVolumeNode::ApplyTransformMatrix`` do (Slicer v5.12.3): the voxels stay as they are. A warping
    transform would need the voxels resampled, and then the review's segments, which Slicer keeps on the volume's
    own voxel grid (``arrayFromSegmentBinaryLabelmap`` exports onto it under the same transform), would no longer
    match them: refused, with what the reader can do.
    """
    ijkToRas = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijkToRas)
    transformNode = node.GetParentTransformNode()
    if transformNode is None:
        return _array(ijkToRas)
    if not transformNode.IsTransformToWorldLinear():
        raise LiverMetsError(
            f"The series '{node.GetName()}' is moved by a warping (non-linear) transform, "
            f"'{transformNode.GetName()}', which LiverMetsReview cannot apply to its voxels: harden it first (Data "
            f"module: right-click '{node.GetName()}', 'Harden transform'; Slicer resamples the series), then try "
            "again.")
    toWorld = vtk.vtkMatrix4x4()
    transformNode.GetMatrixTransformToWorld(toWorld)
    return _array(toWorld) @ _array(ijkToRas)


def pullImage(node: slicer.vtkMRMLScalarVolumeNode) -> sitk.Image:
    """The node's voxels as a SimpleITK image in LPS world coordinates: what the core functions take.

    Under a linear parent transform the geometry is the hardened one (voxels unchanged); a warping transform is
    refused (see ``ijkToWorldRas``)."""
    image = sitkUtils.PullVolumeFromSlicer(node)
    if node.GetParentTransformNode() is None:
        return image  # sitkUtils' geometry, exactly
    ijkToLps = RAS_TO_LPS @ ijkToWorldRas(node)
    spacing = np.linalg.norm(ijkToLps[:3, :3], axis=0)  # as vtkMRMLVolumeNode::SetIJKToRASMatrix splits it
    image.SetSpacing([float(v) for v in spacing])
    image.SetOrigin([float(v) for v in ijkToLps[:3, 3]])
    image.SetDirection([float(v) for v in (ijkToLps[:3, :3] / spacing).ravel()])
    return image


def showAutoWindowLevel(node: slicer.vtkMRMLScalarVolumeNode) -> None:
    """MR intensities have no fixed window: let Slicer pick one from the histogram."""
    node.CreateDefaultDisplayNodes()
    displayNode = node.GetScalarVolumeDisplayNode()
    if displayNode:
        displayNode.AutoWindowLevelOn()


def worldLpsToIjk(node: slicer.vtkMRMLScalarVolumeNode, pointLps: Sequence[float]) -> tuple[int, int, int]:
    """Voxel index (i, j, k) of an LPS world point in ``node``, rounded to the nearest voxel centre (parent
    transforms applied, as ``pullImage`` applies them)."""
    pointRas = [*lpsToRas(pointLps), 1.0]
    if node.GetParentTransformNode() is None:
        rasToIjk = vtk.vtkMatrix4x4()
        node.GetRASToIJKMatrix(rasToIjk)
        ijk = rasToIjk.MultiplyPoint(pointRas)
    else:
        ijk = np.linalg.solve(ijkToWorldRas(node), np.asarray(pointRas))
    return tuple(int(math.floor(v + 0.5)) for v in ijk[:3])  # halves round up, as ITK's physical-point lookup


def gridSummary(node: slicer.vtkMRMLScalarVolumeNode) -> str:
    """Matrix and voxel size in one short text for the series table."""
    imageData = node.GetImageData()
    dims = imageData.GetDimensions() if imageData else (0, 0, 0)
    spacing = node.GetSpacing()
    return "{}x{}x{}, {:.2g}x{:.2g}x{:.2g} mm".format(*dims, *spacing)
