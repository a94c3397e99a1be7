"""LiverMetsReviewTest: the module's self-test (Reload and Test, and the ctest registered for LiverMetsReview.py).

Slicer finds a scripted module's test by name in the module file's namespace (``ScriptedLoadableModule.runTest``
looks up ``<ModuleName>Test`` there; ``slicer.testing.runUnitTest`` loads the TestCase classes of that module), so
LiverMetsReview.py imports this class. The module's logic class is looked up when a test runs, not at import:
this file is imported while LiverMetsReview.py is still loading, and after a Reload the reloaded class is used.
"""

import importlib
import os
from pathlib import Path

import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from LiverMetsReviewLib.errors import LiverMetsError
from LiverMetsReviewLib.maps.adc import ADC_UNITS
from LiverMetsReviewLib.roles import role_ids
from LiverMetsReviewSlicer import attributes, hanging
from LiverMetsReviewSlicer.lesions_section import LESION_KINDS
from LiverMetsReviewSlicer.phantom import COUINAUD_KEY, SEGMENTATION_KEY, generatePhantomStudy, stackNodeName
from LiverMetsReviewSlicer.study_section import SCENARIOS
from LiverMetsReviewSlicer.volumes import lpsToRas, worldLpsToIjk

MODULE_NAME = "LiverMetsReview"
DEFAULT_SCENARIO = SCENARIOS[0]  # the catalogue's default


def _logicClass():
    """The module's logic class (``LiverMetsReview.LiverMetsReviewLogic``), from the module as loaded now."""
    return importlib.import_module(MODULE_NAME).LiverMetsReviewLogic


class LiverMetsReviewTest(ScriptedLoadableModuleTest):
    """Loads the small phantom through the logic and compares the scene with the core's images and truth."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def assertSameGeometry(self, node: vtkMRMLScalarVolumeNode, image, spacingTol: float, originTol: float,
                           places: int) -> None:
        """A volume node (RAS) and a core image (LPS) describe the same grid: spacing, origin, axis directions."""
        import numpy as np

        np.testing.assert_allclose(node.GetSpacing(), image.GetSpacing(), rtol=0, atol=spacingTol)
        np.testing.assert_allclose(node.GetOrigin(), lpsToRas(image.GetOrigin()), rtol=0, atol=originTol)
        directions = vtk.vtkMatrix4x4()
        node.GetIJKToRASDirectionMatrix(directions)
        lpsDirections = np.array(image.GetDirection()).reshape(3, 3)
        for row, sign in enumerate((-1.0, -1.0, 1.0)):
            for col in range(3):
                self.assertAlmostEqual(directions.GetElement(row, col), sign * lpsDirections[row, col], places=places)

    def runTest(self):
        self.setUp()
        self.test_reader_path_through_the_widget()
        self.setUp()
        self.test_lesion_by_a_click_through_the_widget()
        self.setUp()
        self.test_phantom_loads()
        self.setUp()
        self.test_dicom_study_loads()
        self.setUp()
        self.test_dicom_module_imports_the_phantom()
        self.setUp()
        self.test_maps_match_the_core()
        self.setUp()
        self.test_role_edit()
        self.setUp()
        self.test_checklist_through_the_widget()

    def test_reader_path_through_the_widget(self):
        """A reader's path through the GUI, twice (the second study after Close Scene must behave like the first):
        phantom, a role changed in the table, a hanging protocol, ADC and fat with the buttons, the layout kept,
        saved to .mrb, closed, reopened with nodes, roles, maps and layout."""
        slicer.util.selectModule("LiverMetsReview")
        widget = slicer.modules.livermetsreview.widgetRepresentation().self()
        for seed in (11, 12):
            self._readerPath(widget, seed)
            slicer.mrmlScene.Clear(0)
        self.delayDisplay("Widget test passed")

    def test_lesion_by_a_click_through_the_widget(self):
        """Lesions section: "Add lesion" and a click at the phantom's largest lesion (its truth centre, LPS -> RAS)
        gives a segment with Dice > 0.8 against the truth and measures near the truth; saved to .mrb and reloaded,
        the segment, its tags, the seed, the diameter lines and the table come back."""
        import tempfile

        import numpy as np
        import SimpleITK as sitk

        from LiverMetsReviewSlicer import lesion_nodes

        slicer.util.selectModule("LiverMetsReview")
        widget = slicer.modules.livermetsreview.widgetRepresentation().self()
        lesions, params = widget.lesions, widget._parameterNode
        widget.logic.generatePhantom(seed=21, scenario=DEFAULT_SCENARIO, size="small", show=False)
        study = widget.logic.lastPhantomStudy
        truthLesion = max(study.truth["lesions"], key=lambda les: float(les["diameter_mm"]))
        params.lesions.lesionType = "metastasis"
        self.assertEqual(lesions.ui.lesionTypeComboBox.currentIndex, LESION_KINDS.index("metastasis"))
        # "Add lesion": Slicer's one-time place mode on the seed list. The click: the markups widget defines the
        # point (vtkSlicerMarkupsWidget::PlacePoint; AddControlPoint fires the same PointPositionDefinedEvent) and
        # leaves place mode; the section segments the point once the event loop runs (read in Slicer v5.12.3).
        lesions.ui.addLesionButton.click()
        interactionNode = slicer.app.applicationLogic().GetInteractionNode()
        self.assertEqual(interactionNode.GetCurrentInteractionMode(), slicer.vtkMRMLInteractionNode.Place)
        # In place mode the widget may also hold a preview point that follows the mouse (PositionPreview, in the same
        # list): the clicked point is found by its ID and the points counted are the defined ones.
        seeds = params.lesions.seeds  # slicer-class: vtkMRMLMarkupsFiducialNode
        pointId = seeds.GetNthControlPointID(seeds.AddControlPoint(list(lpsToRas(truthLesion["centre_mm"]))))
        self.assertEqual(lesion_nodes.lesionSegmentIds(params.lesions.segmentation), [])  # not inside the event
        interactionNode.SetCurrentInteractionMode(slicer.vtkMRMLInteractionNode.ViewTransform)
        self.assertTrue(self._processEventsUntil(lambda: lesion_nodes.lesionSegmentIds(params.lesions.segmentation)),
                        lesions.ui.lesionsResultLabel.text)
        index = seeds.GetControlPointIndexByID(pointId)
        self.assertGreaterEqual(index, 0, lesions.ui.lesionsResultLabel.text)
        lesionId = lesion_nodes.seedLesionId(seeds.GetNthControlPointDescription(index))
        self.assertEqual(lesionId, "L1", lesions.ui.lesionsResultLabel.text)

        segmentationNode, reference = params.lesions.segmentation, params.lesions.referenceVolume
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, lesionId, reference) != 0
        role = reference.GetAttribute(attributes.ROLE)
        label = next(s["label"] for s in study.segments if s["id"] == truthLesion["id"])
        truth = sitk.GetArrayFromImage(study.labelmap_on(role, study.series_by_role(role).image)) == label
        dice = 2.0 * np.count_nonzero(mask & truth) / (np.count_nonzero(mask) + np.count_nonzero(truth))
        self.assertGreater(dice, 0.8, f"Dice {dice:.2f} of {truthLesion['id']} from a click at its centre")
        segment = segmentationNode.GetSegmentation().GetSegment(lesionId)
        measures = lesion_nodes.storedMeasures(segment)
        spacing = max(reference.GetSpacing())
        self.assertAlmostEqual(measures["long_axis_mm"], float(truthLesion["diameter_mm"]), delta=2 * spacing)
        self.assertAlmostEqual(measures["volume_ml"], float(truthLesion["volume_ml"]),
                               delta=0.25 * float(truthLesion["volume_ml"]))
        self.assertEqual(measures["couinaud_segment"], None)  # no Couinaud map in the review yet: none invented
        tags = {key: lesion_nodes.segmentTag(segment, key) for key in (lesion_nodes.LESION_ID, lesion_nodes.ROLE_TAG,
                                                                       slicer.vtkSegment.GetTerminologyEntryTagName())}
        self.assertEqual(tags[lesion_nodes.LESION_ID], "L1")
        self.assertEqual(tags[lesion_nodes.ROLE_TAG], "metastasis")
        self.assertIn("SCT^14799000^", tags[slicer.vtkSegment.GetTerminologyEntryTagName()])  # neoplasm, secondary
        self.assertEqual((seeds.GetNumberOfDefinedControlPoints(), seeds.GetNthControlPointLabel(index)), (1, "L1"))
        self.assertEqual(len(lesion_nodes.diameterLines("L1")), 2)
        rowBefore = [lesions.ui.lesionTableWidget.item(0, c).text() for c in range(len(lesion_nodes.TABLE_COLUMNS))]

        path = os.path.join(tempfile.mkdtemp(dir=slicer.app.temporaryPath), "lesions.mrb")
        self.assertTrue(slicer.util.saveScene(path))
        slicer.mrmlScene.Clear(0)
        self.assertEqual(lesions.ui.lesionTableWidget.rowCount, 0)
        slicer.util.loadScene(path)
        slicer.app.processEvents()
        params = widget._parameterNode
        reloadedNode, reloadedReference = params.lesions.segmentation, params.lesions.referenceVolume
        self.assertIsNotNone(reloadedNode, "the review segmentation is not in the reloaded parameters")
        reloaded = slicer.util.arrayFromSegmentBinaryLabelmap(reloadedNode, "L1", reloadedReference) != 0
        np.testing.assert_array_equal(reloaded, mask)
        segment = reloadedNode.GetSegmentation().GetSegment("L1")
        self.assertEqual({key: lesion_nodes.segmentTag(segment, key) for key in tags}, tags)
        self.assertEqual(lesion_nodes.storedMeasures(segment), measures)
        seeds = params.lesions.seeds  # slicer-class: vtkMRMLMarkupsFiducialNode
        index = seeds.GetControlPointIndexByID(pointId)
        self.assertEqual((seeds.GetNumberOfDefinedControlPoints(), seeds.GetNthControlPointLabel(index)), (1, "L1"))
        self.assertEqual(lesion_nodes.seedLesionId(seeds.GetNthControlPointDescription(index)), "L1")
        self.assertEqual(len(lesion_nodes.diameterLines("L1")), 2)
        self.assertEqual([lesions.ui.lesionTableWidget.item(0, c).text()
                          for c in range(len(lesion_nodes.TABLE_COLUMNS))], rowBefore)
        self.delayDisplay("Lesion test passed")

    @staticmethod
    def _processEventsUntil(done, seconds: float = 60.0) -> bool:
        """Let Qt's event loop run (deferred work: QTimer.singleShot) until ``done()`` or the time is up."""
        import time

        end = time.monotonic() + seconds
        while not done() and time.monotonic() < end:
            slicer.app.processEvents()
        return bool(done())

    def _readerPath(self, widget, seed: int) -> None:
        import tempfile

        study, maps, params = widget.study, widget.maps, widget._parameterNode
        self.assertIsNone(study._displayedVolumeID, "state left over from the closed scene")
        params.study.phantomSize = "small"
        params.study.phantomSeed = seed
        self.assertEqual(study.ui.sizeComboBox.currentIndex, 1)  # the binding reaches the widget
        study.ui.generatePhantomButton.click()
        truth = widget.logic.lastPhantomStudy
        self.assertIsNotNone(truth, "the phantom button did not load a phantom")
        stacks = sum(len(s.stacks) for s in truth.series)
        self.assertEqual(len(widget.logic.seriesNodes()), stacks)
        study.refresh()
        table = study.ui.seriesTableWidget
        self.assertEqual(table.rowCount, stacks)

        # The reader marks the transitional phase as unusable in the table.
        row = next(r for r in range(table.rowCount) if table.item(r, 0).text() == "t1_transitional")
        combo = table.cellWidget(row, 1)
        combo.setCurrentIndex(role_ids().index(attributes.UNASSIGNED))
        transitional = slicer.util.getNode("t1_transitional")
        self.assertEqual(transitional.GetAttribute(attributes.ROLE), attributes.UNASSIGNED)
        self.assertEqual(transitional.GetAttribute(attributes.ROLE_REASON), "set by the reader")

        params.study.hangingProtocol = "lesion_review"
        study.ui.showLayoutButton.click()
        layoutNode = slicer.app.layoutManager().layoutLogic().GetLayoutNode()
        arrangement = layoutNode.GetViewArrangement()
        self.assertEqual(arrangement, hanging.layoutId(2, 3))
        before = self._backgrounds()
        self.assertEqual(len(before), 6)

        params.maps.adcMethod = "lls"
        study.focus.viewName = "LiverMets2"  # as if the reader had last pointed at view 2
        maps.ui.computeAdcButton.click()
        maps.ui.computeFatButton.click()
        adc, fat = slicer.util.getNode("adc"), slicer.util.getNode("ff_chemical_shift")
        self.assertEqual(adc.GetAttribute(attributes.UNITS), ADC_UNITS)
        self.assertEqual(fat.GetAttribute(attributes.SOURCE), "map")
        self.assertIn("Masked voxels", maps.ui.mapsResultLabel.text)
        self.assertIn("ff_chemical_shift", maps.ui.mapsResultLabel.text)

        # The layout survived: same arrangement, only the view pointed at shows the new map.
        self.assertEqual(layoutNode.GetViewArrangement(), arrangement)
        after = self._backgrounds()
        changed = [view for view in before if before[view] != after[view]]
        self.assertEqual(changed, ["LiverMets2"])
        self.assertEqual(after["LiverMets2"], "ff_chemical_shift")

        path = os.path.join(tempfile.mkdtemp(dir=slicer.app.temporaryPath), f"review{seed}.mrb")
        self.assertTrue(slicer.util.saveScene(path))
        names = sorted(n.GetName() for n in widget.logic.seriesNodes())
        roles = {n.GetName(): n.GetAttribute(attributes.ROLE) for n in widget.logic.seriesNodes()}
        slicer.mrmlScene.Clear(0)
        self.assertIsNone(study._displayedVolumeID)
        self.assertEqual((study.ui.seriesTableWidget.rowCount, maps.ui.mapsResultLabel.text), (0, ""))
        self.assertIsNone(widget.logic.lastPhantomStudy)

        slicer.util.loadScene(path)
        slicer.app.processEvents()
        reloaded = widget.logic.seriesNodes()
        self.assertEqual(sorted(n.GetName() for n in reloaded), names)
        self.assertEqual({n.GetName(): n.GetAttribute(attributes.ROLE) for n in reloaded}, roles)
        self.assertEqual(slicer.util.getNode("adc").GetAttribute(attributes.UNITS), ADC_UNITS)
        self.assertEqual(slicer.app.layoutManager().layoutLogic().GetLayoutNode().GetViewArrangement(), arrangement)
        self.assertEqual(self._backgrounds(), after)

    @staticmethod
    def _backgrounds() -> dict:
        """Hanging view name -> name of the volume it shows."""
        layoutManager = slicer.app.layoutManager()
        out = {}
        for name in layoutManager.sliceViewNames():
            if not str(name).startswith(hanging.VIEW_PREFIX) or not layoutManager.sliceWidget(name).visible:
                continue
            nodeId = layoutManager.sliceWidget(name).mrmlSliceCompositeNode().GetBackgroundVolumeID()
            node = slicer.mrmlScene.GetNodeByID(nodeId) if nodeId else None
            out[str(name)] = node.GetName() if node is not None else None
        return out

    def test_phantom_loads(self):
        import numpy as np
        import SimpleITK as sitk

        self.delayDisplay("Generating the small phantom")
        logic = _logicClass()()
        nodes = logic.generatePhantom(seed=7, scenario=DEFAULT_SCENARIO, fieldStrength=1.5, size="small",
                                      show=False)
        study = logic.lastPhantomStudy
        stacks = [(stackNodeName(s, k), s, k) for s in study.series for k in range(len(s.stacks))]

        # One volume node per stack, in the dict and in the scene.
        volumeNames = [name for name in nodes if name not in (SEGMENTATION_KEY, COUINAUD_KEY)]
        self.assertEqual(sorted(volumeNames), sorted(name for name, _s, _k in stacks))
        self.assertEqual(len(logic.seriesNodes()), len(stacks))

        lesions = study.truth["lesions"]
        self.assertGreater(len(lesions), 0)
        for name, series, k in stacks:
            node = nodes[name]  # slicer-class: vtkMRMLScalarVolumeNode
            image = series.stacks[k]
            self.assertEqual(node.GetAttribute(attributes.ROLE), series.role)
            if "b_value" in series.stack_meta[k]:
                self.assertAlmostEqual(float(node.GetAttribute(attributes.B_VALUE)),
                                       float(series.stack_meta[k]["b_value"]))
            # Geometry: spacing equal, origin and axis directions flipped LPS -> RAS.
            self.assertSameGeometry(node, image, spacingTol=1e-6, originTol=1e-4, places=6)

            # Voxel values at every lesion centre inside this stack: same voxel, same value as the core.
            sceneArray = slicer.util.arrayFromVolume(node)
            coreArray = sitk.GetArrayViewFromImage(image)
            self.assertEqual(sceneArray.shape, coreArray.shape)
            sampled = 0
            for lesion in lesions:
                continuous = np.array(image.TransformPhysicalPointToContinuousIndex(
                    [float(c) for c in lesion["centre_mm"]]))
                index = np.floor(continuous + 0.5).astype(int)
                if np.any(index < 0) or np.any(index >= np.array(image.GetSize())):
                    continue
                self.assertEqual(worldLpsToIjk(node, lesion["centre_mm"]), tuple(int(v) for v in index))
                i, j, kk = index
                self.assertEqual(sceneArray[kk, j, i], coreArray[kk, j, i])
                sampled += 1
            self.assertGreater(sampled, 0, f"no lesion centre falls inside {name}")

        # Ground truth: one segment per organ and lesion, with the truth's names.
        segmentation = nodes[SEGMENTATION_KEY].GetSegmentation()
        names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
        self.assertEqual(sorted(names), sorted(str(s["name"]) for s in study.segments))
        lesionSegments = [s for s in study.segments if s.get("kind") == "lesion"]
        self.assertEqual(len(lesionSegments), len(lesions))
        couinaud = nodes[COUINAUD_KEY].GetSegmentation()
        self.assertEqual(couinaud.GetNumberOfSegments(), 8)  # segments I to VIII
        self.delayDisplay("Phantom test passed")

    def test_dicom_study_loads(self):
        """The phantom written as DICOM comes back with every role, through the core's classifier and loader."""
        import shutil

        import numpy as np
        import SimpleITK as sitk

        from LiverMetsReviewLib.study.classify import classify_folder
        from LiverMetsReviewLib.study.load import load_study

        self.delayDisplay("Writing the small phantom as DICOM")
        study, folder = self._phantomAsDicom("LiverMetsReviewSelfTest")
        try:
            nodes = _logicClass().loadDicomStudy(folder / "dicom", show=False)
            expected = {stackNodeName(s, k): s.role for s in study.series for k in range(len(s.stacks))}
            self.assertEqual(sorted(nodes), sorted(expected))
            for name, role in expected.items():
                self.assertEqual(nodes[name].GetAttribute(attributes.ROLE), role)
                self.assertTrue(nodes[name].GetAttribute(attributes.ROLE_REASON))
            # The scene holds exactly the core's images (pixels and LPS -> RAS geometry).
            core = {stackNodeName(s, k): s.stacks[k] for s in load_study(classify_folder(folder / "dicom"))
                    for k in range(len(s.stacks))}
            for name, image in core.items():
                node = nodes[name]  # slicer-class: vtkMRMLScalarVolumeNode
                np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), sitk.GetArrayViewFromImage(image))
                np.testing.assert_allclose(node.GetOrigin(), lpsToRas(image.GetOrigin()), rtol=0, atol=1e-4)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.delayDisplay("DICOM study test passed")

    def test_dicom_module_imports_the_phantom(self):
        """Slicer's own DICOM module (database import, then loadSeriesByUID with the scalar volume plugin) gives one
        volume per stack of every phantom series (DWI: one per b-value, multi-echo GRE: one per echo), with the
        pixels and LPS -> RAS geometry of the core's reading of the same files."""
        import shutil

        import numpy as np
        import SimpleITK as sitk
        from DICOMLib import DICOMUtils

        from LiverMetsReviewLib.study.classify import classify_folder
        from LiverMetsReviewLib.study.load import load_study

        self.delayDisplay("Importing the small phantom through Slicer's DICOM database")
        study, folder = self._phantomAsDicom("LiverMetsReviewSelfTestDicomDb")
        try:
            stackCounts = {s.role: len(s.stacks) for s in study.series}  # from the generator, not from the files
            self.assertEqual(stackCounts["dwi"], 3)
            self.assertEqual(stackCounts["multi_echo_gre"], 6)
            core = load_study(classify_folder(folder / "dicom"))
            self.assertEqual(sorted(s.role for s in core), sorted(stackCounts))
            with DICOMUtils.TemporaryDICOMDatabase(str(folder / "db")) as database:
                DICOMUtils.importDicom(str(folder / "dicom"), database)
                inDatabase = {uid for patient in database.patients() for studyUid in database.studiesForPatient(patient)
                              for uid in database.seriesForStudy(studyUid)}
                for series in core:
                    uid = series.meta["series_uid"]
                    self.assertIn(uid, inDatabase)
                    # the browser de-duplicates loadables, loadSeriesByUID does not: only the scalar volume plugin
                    loadedIds = DICOMUtils.loadSeriesByUID([uid], enabledPluginClassNames=["DICOMScalarVolumePlugin"])
                    volumes = [slicer.mrmlScene.GetNodeByID(nodeId) for nodeId in loadedIds]
                    volumes = [v for v in volumes if v is not None and v.IsA("vtkMRMLScalarVolumeNode")]
                    self.assertEqual(len(volumes), stackCounts[series.role], f"{series.role}: volumes per series")
                    self._assertVolumesAreTheStacks(volumes, series, np, sitk)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.delayDisplay("DICOM module import test passed")

    @staticmethod
    def _phantomAsDicom(folderName: str) -> tuple:
        """The small 3 T phantom and the fresh folder under Slicer's temporary path it was written into as DICOM
        (``folder / "dicom"``); the caller removes the folder."""
        import shutil

        from LiverMetsReviewLib.phantom import write_phantom

        study = generatePhantomStudy(seed=3, scenario=DEFAULT_SCENARIO, fieldStrength=3.0, size="small")
        folder = Path(slicer.app.temporaryPath) / folderName
        shutil.rmtree(folder, ignore_errors=True)
        write_phantom(study, folder, fmt="dicom")
        return study, folder

    def _assertVolumesAreTheStacks(self, volumes, series, np, sitk) -> None:
        """Each volume equals exactly one of the series' stacks: pixels (within float rounding) and geometry."""
        matched = []
        for volume in volumes:  # slicer-class: vtkMRMLScalarVolumeNode
            array = slicer.util.arrayFromVolume(volume).astype(float)
            candidates = [k for k, stack in enumerate(series.stacks)
                          if sitk.GetArrayViewFromImage(stack).shape == array.shape
                          and np.allclose(array, sitk.GetArrayViewFromImage(stack), rtol=1e-5,
                                          atol=1e-4 * max(1.0, float(np.abs(array).max())))]
            self.assertEqual(len(candidates), 1, f"{series.role}: {volume.GetName()} matches stacks {candidates}")
            image = series.stacks[candidates[0]]
            self.assertSameGeometry(volume, image, spacingTol=1e-4, originTol=1e-3, places=5)
            matched.append(candidates[0])
        self.assertEqual(sorted(matched), list(range(len(series.stacks))), f"{series.role}: stacks merged or missed")

    def test_maps_match_the_core(self):
        """Maps computed from the scene equal the core's maps computed from the core's own images."""
        import numpy as np
        import SimpleITK as sitk

        from LiverMetsReviewLib.maps import ADC_UNITS, chemical_shift_fat, fit_adc, relative_enhancement
        from LiverMetsReviewLib.maps.pdff import fit_pdff

        self.delayDisplay("Computing maps on the small phantom")
        logic = _logicClass()()
        logic.generatePhantom(seed=5, scenario=DEFAULT_SCENARIO, fieldStrength=1.5, size="small", show=False)
        study = logic.lastPhantomStudy

        def sceneArray(node):
            return slicer.util.arrayFromVolume(node)

        dwi = study.series_by_role("dwi")
        nodes, summary = logic.computeAdc("lls")
        core = fit_adc(dwi.stacks, dwi.b_values, method="lls")
        np.testing.assert_array_equal(sceneArray(nodes["adc"]), sitk.GetArrayViewFromImage(core.adc))
        self.assertEqual(nodes["adc"].GetAttribute(attributes.UNITS), ADC_UNITS)
        self.assertEqual(summary["masked_voxels"], core.summary["masked_voxels"])

        ip, op = study.series_by_role("t1_in_phase"), study.series_by_role("t1_opposed_phase")
        nodes, _summary = logic.computeChemicalShiftFat()
        core = chemical_shift_fat(ip.image, op.image, field_strength_t=1.5,
                                  echo_times_ms=(ip.meta["echo_time_ms"], op.meta["echo_time_ms"]))
        np.testing.assert_array_equal(sceneArray(nodes["ff_chemical_shift"]),
                                      sitk.GetArrayViewFromImage(core.ff))

        echoes = study.series_by_role("multi_echo_gre")
        nodes, _summary = logic.computePdff()
        core = fit_pdff(echoes.stacks, echoes.echo_times_ms, field_strength_t=1.5)
        np.testing.assert_array_equal(sceneArray(nodes["pdff"]), sitk.GetArrayViewFromImage(core.pdff))
        np.testing.assert_array_equal(sceneArray(nodes["r2star"]), sitk.GetArrayViewFromImage(core.r2star))

        nodes, _summary = logic.computeEnhancement("t1_hepatobiliary")
        core = relative_enhancement(study.series_by_role("t1_pre").image,
                                    study.series_by_role("t1_hepatobiliary").image, phase="t1_hepatobiliary")
        np.testing.assert_array_equal(sceneArray(nodes["re_hepatobiliary"]),
                                      sitk.GetArrayViewFromImage(core.re))

        # The phantom has no breath-hold shift here: aligning the HBP to the pre-contrast T1 must find (almost)
        # no motion, put the result on the reference grid and keep the role.
        pre = next(n for n in logic.seriesNodes() if n.GetAttribute(attributes.ROLE) == "t1_pre")
        hbp = next(n for n in logic.seriesNodes() if n.GetAttribute(attributes.ROLE) == "t1_hepatobiliary")
        nodes, summary = logic.alignSeries(pre, hbp)
        aligned = next(iter(nodes.values()))  # slicer-class: vtkMRMLScalarVolumeNode
        self.assertEqual(aligned.GetAttribute(attributes.ROLE), "t1_hepatobiliary")
        self.assertEqual(sceneArray(aligned).shape, sceneArray(pre).shape)
        np.testing.assert_allclose(aligned.GetOrigin(), pre.GetOrigin(), atol=1e-4)
        self.assertLess(float(np.max(np.abs(summary["transform_parameters"][3:6]))), 1.0)  # translation, mm
        self.delayDisplay("Maps test passed")

    def test_role_edit(self):
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "series")
        self.assertEqual(attributes.nodeRole(node), attributes.UNASSIGNED)
        _logicClass().setRole(node, "t1_hepatobiliary")
        self.assertEqual(node.GetAttribute(attributes.ROLE), "t1_hepatobiliary")
        with self.assertRaises(LiverMetsError):
            _logicClass().setRole(node, "not_a_role")
        self.assertEqual(node.GetAttribute(attributes.ROLE), "t1_hepatobiliary")
        self.delayDisplay("Role edit test passed")

    def test_checklist_through_the_widget(self):
        """The Checklist section on a phantom lesion added by a click at the truth's centre (Lesions section): answers
        given with the section's buttons and shortcut actions (one overriding a suggestion), saved to .mrb, reopened:
        every answer, on the segment, in the parameter node and in review.json, and the impression unchanged. Then
        the Report section's one button (see ``_reportThroughTheWidget``)."""
        import json
        import tempfile

        from LiverMetsReviewLib.context import write_clinical_context
        from LiverMetsReviewSlicer import checklist_scene

        slicer.util.selectModule("LiverMetsReview")
        widget = slicer.modules.livermetsreview.widgetRepresentation().self()
        section, logic, params = widget.checklist, widget.logic, widget._parameterNode
        logic.generatePhantom(seed=13, scenario=DEFAULT_SCENARIO, size="small")
        logic.computeAdc()
        logic.computeChemicalShiftFat()
        for phase in ("t1_arterial", "t1_portal_venous", "t1_hepatobiliary"):
            logic.computeEnhancement(phase)
        study = logic.lastPhantomStudy
        truthLesion = max(study.truth["lesions"], key=lambda les: les["diameter_mm"])
        lesionId = widget.lesions.addLesionAt(lpsToRas(truthLesion["centre_mm"]), "metastasis")
        self.assertIsNotNone(lesionId, widget.lesions.ui.lesionsResultLabel.text)
        truth = {**truthLesion, "id": lesionId}  # the checklist and the report know the lesion by its review id
        folder = Path(tempfile.mkdtemp(dir=slicer.app.temporaryPath))
        params.checklist.contextFile = write_clinical_context(study.truth["clinical_context"], folder / "context.json")
        params.checklist.reviewFolder = folder / "review"

        section.ui.startButton.click()
        self.assertEqual(section.ui.stepComboBox.count, 2)  # the study, the lesion
        section.ui.indeterminateButton.click()  # the study's first item
        section.moveStep(1)  # Alt+Down
        self.assertEqual(params.checklist.step, truth["id"])
        first = section.current()
        {"yes": section.ui.yesButton, "no": section.ui.noButton}.get(first["suggested"],
                                                                      section.ui.notAssessedButton).click()
        for _step in range(len(section.session.result["lesions"][0]["items"])):
            if section.current()["suggested"] in ("yes", "no"):
                break
            section.moveItem(1)  # Alt+Right
        overridden = section.current()
        self.assertIn(overridden["suggested"], ("yes", "no"), "no later item has a yes/no suggestion to override")
        (section.ui.noButton if overridden["suggested"] == "yes" else section.ui.yesButton).click()
        answers = json.loads(params.checklist.answers)
        self.assertEqual(len(answers["study"]) + len(answers[truth["id"]]), 3)
        self.assertNotEqual(answers[truth["id"]][overridden["id"]]["answer"], overridden["suggested"])
        impression = section.ui.impressionLabel.text
        self.assertTrue(impression.startswith("Impression: "))

        path = str(folder / "checklist.mrb")
        self.assertTrue(slicer.util.saveScene(path))
        slicer.mrmlScene.Clear(0)
        self.assertIsNone(section.session)
        slicer.util.loadScene(path)
        slicer.app.processEvents()
        self.assertIsNotNone(section.session)
        self.assertEqual(json.loads(params.checklist.answers), answers)
        lesion = checklist_scene.lesionSegments()[0]
        self.assertEqual(checklist_scene.lesionAnswers(lesion), answers[truth["id"]])
        self.assertEqual(json.loads((folder / "review" / "review.json").read_text())["answers"], answers)
        section.goToStep(truth["id"])
        self.assertEqual(section.ui.impressionLabel.text, impression)
        self.delayDisplay("Checklist test passed")
        self._reportThroughTheWidget(widget, folder, truth["id"])

    def _reportThroughTheWidget(self, widget, folder: Path, lesionId: str) -> None:
        """The Report section's one button on the scene: the scene's volumes written as a study folder and its lesion
        as a lesions folder, HTML, PDF (Slicer's Qt) and text written; the HTML table holds the clicked lesion with the
        measures the Lesions section shows (now recomputed from the segment as it is) and its key-image strip; the
        text on the clipboard."""
        import json
        import re

        import qt

        from LiverMetsReviewSlicer import lesion_nodes

        section, params = widget.report, widget._parameterNode
        params.report.outputFolder = folder / "report"
        section.ui.generateButton.click()
        for name in ("report.html", "report.pdf", "report.txt", "study/roles.json", "lesions/measurements.json",
                     "lesions/lesions.seg.nrrd"):
            path = folder / "report" / name
            self.assertTrue(path.exists() and path.stat().st_size > 0, f"{name} was not written")
        html = (folder / "report" / "report.html").read_text(encoding="utf-8")
        self.assertIn("do not replace the radiologist", html)
        row = re.search(rf'<tr data-lesion="{lesionId}">(.*?)</tr>', html, re.S)
        self.assertIsNotNone(row, f"the table has no row for {lesionId}")
        shown = dict(re.findall(r'data-quantity="(\w+)" data-value="([^"]*)"', row.group(1)))
        segment = params.lesions.segmentation.GetSegmentation().GetSegment(lesionId)
        measures = lesion_nodes.storedMeasures(segment)
        self.assertAlmostEqual(float(shown["long_axis"]), measures["long_axis_mm"], places=6)
        self.assertAlmostEqual(float(shown["short_axis"]), measures["short_axis_mm"], places=6)
        self.assertAlmostEqual(float(shown["volume"]), measures["volume_ml"], places=6)
        written = json.loads((folder / "report" / "lesions" / "measurements.json").read_text())
        self.assertEqual([les["id"] for les in written["lesions"]], [lesionId])
        strip = re.search(rf'<section data-lesion="{lesionId}">(.*?)</section>', html, re.S).group(1)
        self.assertEqual(strip.count("<img data-series="), 6, "the key-image strip is not complete")  # phantom: all 6
        self.assertTrue((folder / "report" / "report.pdf").read_bytes().startswith(b"%PDF"))
        text = section.copyText()
        self.assertIn(f"Lesion {lesionId}", text)
        self.assertEqual(qt.QApplication.clipboard().text(), text)
        self.delayDisplay("Report test passed")
