"""Volume nodes <-> SimpleITK images, and LPS <-> RAS world coordinates.

The core works in LPS (as DICOM and ITK); Slicer's scene is RAS. ``sitkUtils`` converts the geometry when it
pushes or pulls a volume; points are converted here, in one place.

Every image the core gets is in world coordinates, where the views show it: a volume under a linear parent transform
(a series registered by a transform, e.g. the DWI moved onto the HBP) is pulled as hardening would leave it.
``sitkUtils.PullVolumeFromSlicer`` reads the node's own IJK-to-RAS matrix only (read in Slicer v5.10.0 and v5.12.3,
Base/Python/sitkUtils.py), so the transform is applied here. A series under a warping transform cannot be used
as it is shown: work that can do without it leaves it out and names it (``pullOrLeaveOut``: the lesion work, the
checklist's measurements, the report's study folder; the Study section's grid column says so), work that needs it
stops with the same advice (``pullImage``: the series the lesions are drawn and measured on, a map's inputs).
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
from LiverMetsReviewLib.lesions.lps import set_grid

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


def warpingTransform(node: slicer.vtkMRMLScalarVolumeNode):
    """The transform node that moves ``node`` by a warp (non-linear to world), else None."""
    transformNode = node.GetParentTransformNode()
    return transformNode if transformNode is not None and not transformNode.IsTransformToWorldLinear() else None


def _hardenAdvice(node) -> str:
    return (f"harden it first (Data module: right-click '{node.GetName()}', 'Harden transform'; Slicer resamples "
            "the series)")


def warpedMessage(node: slicer.vtkMRMLScalarVolumeNode, neededFor: str = "") -> str:
    """Why a series under a warping transform cannot be used, and what the reader can do."""
    need = f" {neededFor} cannot do without it:" if neededFor else ""
    return (f"The series '{node.GetName()}' is moved by a warping (non-linear) transform, "
            f"'{warpingTransform(node).GetName()}', which LiverMetsReview cannot apply to its voxels;{need} "
            f"{_hardenAdvice(node)}, then try again.")


def leftOutNote(node: slicer.vtkMRMLScalarVolumeNode) -> str:
    """The note for a series left out because a warping transform moves it."""
    return (f"'{node.GetName()}' left out: it is moved by a warping (non-linear) transform, "
            f"'{warpingTransform(node).GetName()}', which LiverMetsReview cannot apply to its voxels; to use it, "
            f"{_hardenAdvice(node)}.")


def ijkToWorldRas(node: slicer.vtkMRMLScalarVolumeNode, neededFor: str = "") -> np.ndarray:
    """4x4 voxel index -> world RAS of the volume as the views show it (its parent transforms applied).

    A linear transform to world multiplies the IJK-to-RAS matrix, as ``vtkMRMLTransformableNode::HardenTransform``
    and ``vtkMRMLVolumeNode::ApplyTransformMatrix`` do (Slicer v5.12.3): the voxels stay as they are. A warping
    transform would need the voxels resampled, and then the review's segments, which Slicer keeps on the volume's
    own voxel grid (``arrayFromSegmentBinaryLabelmap`` exports onto it under the same transform), would no longer
    match them: refused, with what the reader can do (``neededFor`` names the work that needs the series).
    """
    ijkToRas = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijkToRas)
    transformNode = node.GetParentTransformNode()
    if transformNode is None:
        return _array(ijkToRas)
    if warpingTransform(node) is not None:
        raise LiverMetsError(warpedMessage(node, neededFor))
    toWorld = vtk.vtkMatrix4x4()
    transformNode.GetMatrixTransformToWorld(toWorld)
    return _array(toWorld) @ _array(ijkToRas)


def pullImage(node: slicer.vtkMRMLScalarVolumeNode, neededFor: str = "") -> sitk.Image:
    """The node's voxels as a SimpleITK image in LPS world coordinates: what the core functions take.

    Under a linear parent transform the geometry is the hardened one (voxels unchanged); a warping transform is
    refused (see ``ijkToWorldRas``)."""
    if node.GetParentTransformNode() is None:
        return sitkUtils.PullVolumeFromSlicer(node)  # sitkUtils' geometry, exactly
    ijkToLps = RAS_TO_LPS @ ijkToWorldRas(node, neededFor)
    return set_grid(sitkUtils.PullVolumeFromSlicer(node), ijkToLps[:3, :3], ijkToLps[:3, 3])


def pullOrLeaveOut(node: slicer.vtkMRMLScalarVolumeNode, notes: list[str]) -> sitk.Image | None:
    """``pullImage``, or None with a note in ``notes`` when a warping transform moves the series: for the series a
    piece of work can do without (it goes on with the others; the reader is told which and how to bring it in)."""
    if warpingTransform(node) is not None:
        notes.append(leftOutNote(node))
        return None
    return pullImage(node)


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
    """Matrix and voxel size in one short text for the series table: the grid the sections compute on (under a
    linear transform the moved one, as ``pullImage`` gives it); a series a warping transform moves says so."""
    imageData = node.GetImageData()
    dims = imageData.GetDimensions() if imageData else (0, 0, 0)
    if warpingTransform(node) is not None:
        return "{}x{}x{}, warped by '{}': left out until hardened".format(*dims, warpingTransform(node).GetName())
    spacing = np.linalg.norm(ijkToWorldRas(node)[:3, :3], axis=0)
    return "{}x{}x{}, {:.2g}x{:.2g}x{:.2g} mm".format(*dims, *spacing)
