"""The Checklist section: the guided reading, one item at a time, per lesion and for the study.

Thin: every question, suggestion, evidence, applicability and impression comes from the core's engine
(``LiverMetsReviewLib.checklist.review``), recomputed after each answer; this file only walks its output and
shows it. Steps are the study's items first, then each lesion of the review segmentation (segments with a
lesion-id tag, ``checklist_scene``); within a step the cursor visits the applicable items.

Persistence: every answer is saved the moment it is given, in three places: on the lesion's segment (tag; the
study's answers on the segmentation node), in the parameter node (``checklist.answers``) and in the sidecar
``review.json`` (the core's ``ReviewSession``: atomic write, last good copy kept). The sidecar's folder is
``checklist.reviewFolder``: the reader's choice, else the folder of the saved scene, else a new folder under
Slicer's temporary path; it is recorded in the parameter node, so a reopened scene writes the same sidecar. On
opening, the three are merged answer by answer, the latest (``at``) wins: a scene saved before a crash gets
back the answers the sidecar kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import qt
import slicer
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import parameterPack

from . import checklist_scene as scene
from .section import Section

ANSWER_KEYS = {"yes": "Alt+Y", "no": "Alt+N", "indeterminate": "Alt+I", "not assessed": "Alt+X"}
NAVIGATION_KEYS = {"previousItem": "Alt+Left", "nextItem": "Alt+Right", "previousStep": "Alt+Up",
                   "nextStep": "Alt+Down", "show": "Alt+S"}
ANSWER_BUTTONS = {"yes": "yesButton", "no": "noButton", "indeterminate": "indeterminateButton",
                  "not assessed": "notAssessedButton"}
STUDY = "study"


@parameterPack
class ChecklistParameters:
    """contextFile: clinical_context.json. reviewFolder: where review.json is kept. answers: every answer (JSON,
    as review.json's ``answers``). step, itemId: where the reader is."""

    contextFile: Path
    reviewFolder: Path
    answers: str = ""
    step: str = STUDY
    itemId: str = ""


# ------------------------------------------------------------------ pure helpers (tested headless)


def mergeAnswers(*sources: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """{scope: {item: answer}} from several copies; per item the latest ``at`` wins (ties: the earlier source)."""
    out: dict[str, dict[str, Any]] = {}
    for source in sources:
        for scope, items in (source or {}).items():
            for itemId, answer in (items or {}).items():
                have = out.get(scope, {}).get(itemId)
                if have is None or str(answer.get("at", "")) > str(have.get("at", "")):
                    out.setdefault(scope, {})[itemId] = dict(answer)
    return out


def steps(result: Mapping[str, Any]) -> list[str]:
    return [STUDY] + [les["id"] for les in result["lesions"]]


def stepResult(result: Mapping[str, Any], step: str) -> Mapping[str, Any] | None:
    """The study's part or one lesion's part of the engine output."""
    if step == STUDY:
        return result["study"]
    return next((les for les in result["lesions"] if les["id"] == step), None)


def applicableRows(result: Mapping[str, Any], step: str) -> list[Mapping[str, Any]]:
    part = stepResult(result, step)
    return [r for r in part["items"] if r["applicable"]] if part else []


def moveItem(result: Mapping[str, Any], step: str, itemId: str, delta: int) -> str:
    """The applicable item ``delta`` places from ``itemId`` (clamped); an item that no longer applies (an answer
    changed what applies) continues from where it stood in the checklist."""
    rows = applicableRows(result, step)
    if not rows:
        return ""
    ids = [r["id"] for r in rows]
    if itemId in ids:
        index = ids.index(itemId) + delta
    else:
        order = [r["id"] for r in stepResult(result, step)["items"]]
        after = order.index(itemId) if itemId in order else -1
        index = next((k for k, r in enumerate(ids) if order.index(r) > after), len(ids)) + min(delta, 0)
    return ids[max(0, min(len(ids) - 1, index))]


def moveStep(result: Mapping[str, Any], step: str, delta: int) -> str:
    names = steps(result)
    index = names.index(step) + delta if step in names else 0
    return names[max(0, min(len(names) - 1, index))]


def stepLabel(result: Mapping[str, Any], step: str) -> str:
    part = stepResult(result, step)
    progress = part["progress"] if part else {"answered": 0, "applicable": 0}
    if step == STUDY:
        head = _("Study")
    else:
        seg, size = part.get("couinaud_segment"), part.get("long_axis_mm")
        head = _("Lesion {id}").format(id=step) + (f", segment {seg}" if seg else "") + (
            f", {size:.0f} mm" if isinstance(size, (int, float)) else "")
    return f"{head} ({progress['answered']}/{progress['applicable']})"


def progressText(progress: Mapping[str, int]) -> str:
    return _("{answered} of {applicable} applicable items answered").format(**progress)


def _unit(c: Mapping[str, Any]) -> str:
    return "" if c.get("unit") in ("", "1", None) else f" {c['unit']}"  # "1": a ratio


def evidenceText(row: Mapping[str, Any]) -> str:
    """Each condition: measured value, operator, threshold with unit and uncertainty, its source ids; why not."""
    lines = []
    for c in row.get("evidence") or []:
        src = ", ".join(c.get("source") or [])
        name = c.get("name") or c["value_key"]  # sidecars of checklist < 1.4 carry no readable name or text
        if c.get("threshold_id") is None and c.get("text"):  # an earlier item's answer, not a measurement
            lines.append(c["text"])
        elif c.get("holds") is None:
            lines.append(f"{c.get('text') or name + ': not measured (' + str(c.get('why', '')) + ')'}; needs "
                         f"{c['operator']} {c['threshold']:g}{_unit(c)} [{src}]")
        else:
            shown = c.get("text") or f"{name} = {c['value']:g} {c['operator']} {c['threshold']:g}{_unit(c)}"
            lines.append(f"{shown} (\u00b1{c['uncertainty']:g}): {'met' if c['holds'] else 'not met'}, "
                         f"confidence {c['confidence']:.2f} [{src}]")
    if not lines:
        lines.append(row.get("explanation") or "")
    if row.get("sources"):
        lines.append(_("Sources: ") + ", ".join(row["sources"]))
    return "\n".join(line for line in lines if line)


def sourcesText(ids: list[str], sources: Mapping[str, str]) -> str:
    """Source ids spelled out (the evidence's tooltip)."""
    return "\n".join(f"{i}: {sources.get(i, i)}" for i in ids)


def suggestionText(row: Mapping[str, Any]) -> str:
    text = _("Suggested: {answer}").format(answer=row.get("suggested") or "-")
    if row.get("confidence") is not None:
        text += f" (confidence {row['confidence']:.2f})"
    extra = [t for t in (row.get("wording"), row.get("unreliable")) if t]
    return text + ("\n" + "\n".join(extra) if extra else "")


def answerText(row: Mapping[str, Any]) -> str:
    if row.get("answer") is None:
        return _("Your answer: none yet (the suggestion counts)")
    note = f" \u2014 {row['note']}" if row.get("note") else ""
    return _("Your answer: {answer}").format(answer=row["answer"]) + note


def impressionText(part: Mapping[str, Any] | None, step: str, pitfallNames: Mapping[str, str] | None = None) -> str:
    """A lesion's impression with the items that drove it; for the study step, the study summary (its pitfalls
    under their checklist names, ``pitfallNames``)."""
    if part is None:
        return ""
    if step == STUDY:
        from LiverMetsReviewLib.checklist.report import pitfalls_text

        s = part["summary"]
        fat = s.get("background_fat_percent")
        return "\n".join([
            _("Lesions: {n}; by impression: {cats}").format(
                n=s["lesion_count"], cats=", ".join(f"{k} {v}" for k, v in s["by_impression"].items()) or "-"),
            _("Background fat: {fat}; HBP function: {hbp}").format(
                fat="-" if fat is None else f"{fat:.1f} %", hbp=s["hbp_function"]),
            _("Pitfalls in play: {p}").format(p=pitfalls_text(s["pitfalls_in_play"], pitfallNames))])
    imp = part["impression"]
    lines = [_("Impression: {category}").format(category=imp["category"])]
    if imp.get("wording"):
        lines.append(imp["wording"])
    shown = []
    for reason in imp["reasons"]:  # an item may hold in two conditions of a rule: list it once
        text = f"  \u2022 {reason['condition']} ({_('your answer') if reason['by'] == 'reader' else _('suggested')})"
        if text not in shown:
            shown.append(text)
    lines += shown
    pitfalls = part.get("pitfalls_in_play") or []
    if pitfalls:
        lines.append(_("Pitfalls in play: {p}").format(p=", ".join(p["name"] for p in pitfalls)))
    lines.append(_("Recommendation: {text}").format(text=imp["recommendation"]))
    return "\n".join(lines)


def shortcutHelp() -> str:
    """The shortcut list shown in the section and in the module's help."""
    names = {"previousItem": _("previous item"), "nextItem": _("next item"), "previousStep": _("previous lesion"),
             "nextStep": _("next lesion"), "show": _("show")}
    parts = [f"{key} {answer}" for answer, key in ANSWER_KEYS.items()]
    parts += [f"{key} {names[what]}" for what, key in NAVIGATION_KEYS.items()]
    return ", ".join(parts)


# ------------------------------------------------------------------ the section


class ChecklistSection(Section):
    UI_FILE = "UI/ChecklistSection.ui"
    PACK = "checklist"

    def __init__(self) -> None:
        super().__init__()
        self.session = None
        self.lesions: list[scene.LesionSegment] = []
        self.shortcuts: list = []
        self._contextFile = None
        self._importObserver = None

    def setup(self, ui, logic) -> None:
        super().setup(ui, logic)
        ui.startButton.connect("clicked(bool)", self.onStart)
        for answer, name in ANSWER_BUTTONS.items():
            getattr(ui, name).connect("clicked(bool)", lambda _checked=False, a=answer: self.answer(a))
        ui.previousButton.connect("clicked(bool)", lambda: self.moveItem(-1))
        ui.nextButton.connect("clicked(bool)", lambda: self.moveItem(1))
        ui.showButton.connect("clicked(bool)", self.show)
        ui.stepComboBox.connect("activated(int)", self.onStepChosen)
        ui.shortcutsLabel.text = shortcutHelp()
        self.shortcuts = self._makeShortcuts()
        self._importObserver = slicer.mrmlScene.AddObserver(slicer.mrmlScene.EndImportEvent, self.onSceneImported)
        self.render()

    def _makeShortcuts(self) -> list:
        """Application-wide while the module is shown (enabled with the parameter node, see setParameterNode)."""
        actions = {key: (lambda a=answer: self.answer(a)) for answer, key in ANSWER_KEYS.items()}
        moves = {"previousItem": lambda: self.moveItem(-1), "nextItem": lambda: self.moveItem(1),
                 "previousStep": lambda: self.moveStep(-1), "nextStep": lambda: self.moveStep(1), "show": self.show}
        actions.update({NAVIGATION_KEYS[what]: call for what, call in moves.items()})
        out = []
        for key, call in actions.items():
            shortcut = qt.QShortcut(qt.QKeySequence(key), slicer.util.mainWindow())
            shortcut.setEnabled(False)
            shortcut.connect("activated()", call)
            out.append(shortcut)
        return out

    def setParameterNode(self, params) -> None:
        super().setParameterNode(params)
        for shortcut in self.shortcuts:
            shortcut.setEnabled(params is not None)

    def afterBinding(self) -> None:
        """Reopened scene or module entered: restore the review when the scene holds one."""
        self._contextFile = self.pack.contextFile
        if self.session is None and self.pack.answers and not slicer.mrmlScene.IsImporting():
            with slicer.util.tryWithErrorDisplay(_("Failed to restore the checklist."), waitCursor=True):
                self.load()

    def onSceneImported(self, caller=None, event=None) -> None:
        """A scene was opened: its parameter node and segments are complete now, restore its review."""
        if self.pack is not None and self.session is None and self.pack.answers:
            with slicer.util.tryWithErrorDisplay(_("Failed to restore the checklist."), waitCursor=True):
                self.load()

    def onParametersModified(self) -> None:
        if slicer.mrmlScene.IsImporting():
            return
        if self.session is not None and self.pack is not None and self.pack.contextFile != self._contextFile:
            self._contextFile = self.pack.contextFile
            self.load()  # the clinical context changes what applies

    def onSceneClosed(self) -> None:
        self.session, self.lesions, self._contextFile = None, [], None
        self.render()

    def cleanup(self) -> None:
        if self._importObserver is not None:
            slicer.mrmlScene.RemoveObserver(self._importObserver)
            self._importObserver = None
        for shortcut in self.shortcuts:
            shortcut.setEnabled(False)
            shortcut.setParent(None)
        self.shortcuts = []

    # ---------------------------------------------------------------- loading and saving

    def onStart(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start the checklist."), waitCursor=True):
            self.load()

    def sidecarPath(self) -> Path:
        """review.json in the recorded folder; chosen once (the scene's folder or a new temporary one) and recorded."""
        folder = self.pack.reviewFolder
        if str(folder) in ("", "."):
            url = slicer.mrmlScene.GetURL()
            folder = (Path(url).parent if url and not url.endswith(".mrb") else
                      Path(slicer.app.temporaryPath) / "LiverMetsReview" / time.strftime("review-%Y%m%d-%H%M%S"))
            self.pack.reviewFolder = folder
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / "review.json"

    def load(self) -> None:
        """Lesions from the scene, the engine bound to them, answers merged from segment, parameter node, sidecar."""
        from LiverMetsReviewLib.checklist.data import load_checklist
        from LiverMetsReviewLib.checklist.engine import review
        from LiverMetsReviewLib.checklist.store import ReviewSession, reconcile
        from LiverMetsReviewLib.context import read_clinical_context

        self.lesions = scene.lesionSegments()
        leftOut: list[str] = []
        inputs = [scene.lesionMeasurement(lesion, self.lesions, leftOut) for lesion in self.lesions]
        node = self.lesions[0].node if self.lesions else None
        figures = scene.studyFigures(node)
        contextFile = self.pack.contextFile
        context = read_clinical_context(contextFile) if str(contextFile) not in ("", ".") else None
        checklist = load_checklist()

        def compute(answers: dict) -> dict:
            return review(inputs, figures, context, answers, checklist)

        scopes = [les.lesionId for les in self.lesions]
        session = ReviewSession(self.sidecarPath(), compute, scopes, checklist)
        if context is not None:
            session.inputs = {"context": str(contextFile)}  # the report shows the context the review used
        inSidecar = session.answers
        onScene = {les.lesionId: scene.lesionAnswers(les) for les in self.lesions}
        onScene[STUDY] = scene.studyAnswers(node)
        merged = mergeAnswers(session.answers, scene.readJson(self.pack.answers, {}), onScene)
        session.answers, vanished, notes = reconcile(merged, checklist, scopes)
        session.vanished = mergeAnswers(session.vanished, vanished)
        session.notes += notes + list(dict.fromkeys(leftOut))  # once each, not once per lesion
        session.result = compute(session.answers)
        self.session = session
        self.persist(saveSidecar=session.answers != inSidecar or not session.path.exists())
        self.ui.messagesLabel.text = "\n".join(session.notes)
        self.render()

    def persist(self, saveSidecar: bool = False) -> None:
        """The answers on the segments and in the parameter node (the store saved the sidecar already)."""
        answers = self.session.answers
        scene.writeAnswers(self.lesions, answers)
        text = json.dumps(answers, sort_keys=True)
        if self.pack.answers != text:
            self.pack.answers = text
        if saveSidecar:
            self.session.save()
        self.ui.reviewFileLabel.text = str(self.session.path)

    # ---------------------------------------------------------------- reading

    def current(self) -> Mapping[str, Any] | None:
        if self.session is None:
            return None
        rows = applicableRows(self.session.result, self.pack.step)
        return next((r for r in rows if r["id"] == self.pack.itemId), rows[0] if rows else None)

    def answer(self, value: str) -> None:
        """Save the reader's answer at once (sidecar, segment, parameter node), then go to the next item."""
        row = self.current()
        if row is None:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to save the answer."), waitCursor=True):
            self.session.answer(self.pack.step, row["id"], value, self.ui.noteLineEdit.text.strip())
            self.persist()
            self.ui.noteLineEdit.text = ""
            self.pack.itemId = moveItem(self.session.result, self.pack.step, row["id"], 1)
        self.render()

    def moveItem(self, delta: int) -> None:
        row = self.current()
        if row is not None:
            self.pack.itemId = moveItem(self.session.result, self.pack.step, row["id"], delta)
            self.render()

    def moveStep(self, delta: int) -> None:
        if self.session is not None:
            self.goToStep(moveStep(self.session.result, self.pack.step, delta))

    def onStepChosen(self, index: int) -> None:
        if self.session is not None and 0 <= index < len(steps(self.session.result)):
            self.goToStep(steps(self.session.result)[index])

    def goToStep(self, step: str) -> None:
        self.pack.step = step
        rows = applicableRows(self.session.result, step)
        self.pack.itemId = rows[0]["id"] if rows else ""
        self.render()

    def show(self) -> None:
        """The item's hanging protocol, every view centred on the lesion (study items: the protocol only)."""
        row = self.current()
        if row is None:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to show the item's series."), waitCursor=True):
            self.logic.showHangingProtocol(row["protocol"])
            lesion = next((les for les in self.lesions if les.lesionId == self.pack.step), None)
            centre = scene.lesionCentreRas(lesion) if lesion is not None else None
            if centre is not None:
                scene.centreViewsOn(centre)

    def render(self) -> None:
        """Bind the engine's output of the current step and item to the widgets."""
        ui = self.ui
        row = self.current()
        enabled = row is not None
        for name in [*ANSWER_BUTTONS.values(), "previousButton", "nextButton", "showButton", "noteLineEdit"]:
            getattr(ui, name).enabled = enabled
        if self.session is None:
            ui.stepComboBox.clear()
            for label in (ui.itemLabel, ui.questionLabel, ui.suggestionLabel, ui.evidenceLabel, ui.answerLabel,
                          ui.progressLabel, ui.impressionLabel, ui.reviewFileLabel, ui.messagesLabel):
                label.text = ""
            ui.questionLabel.text = _("Add lesion segments (Lesions section), then start the checklist.")
            return
        result, step = self.session.result, self.pack.step
        names = steps(result)
        ui.stepComboBox.clear()
        for name in names:
            ui.stepComboBox.addItem(stepLabel(result, name))
        ui.stepComboBox.currentIndex = names.index(step) if step in names else 0
        part = stepResult(result, step)
        ui.progressLabel.text = progressText(part["progress"]) if part else ""
        from LiverMetsReviewLib.checklist.report import pitfall_names

        ui.impressionLabel.text = impressionText(part, step, pitfall_names(result))
        rows = applicableRows(result, step)
        if row is None:
            ui.itemLabel.text, ui.suggestionLabel.text, ui.evidenceLabel.text, ui.answerLabel.text = "", "", "", ""
            ui.questionLabel.text = _("No applicable item in this step.")
            return
        index = [r["id"] for r in rows].index(row["id"])
        ui.itemLabel.text = f"{index + 1}/{len(rows)} \u00b7 {row['group']} \u00b7 {row['name']}"
        ui.questionLabel.text = row["question"]
        ui.questionLabel.toolTip = row.get("help") or ""
        ui.suggestionLabel.text = suggestionText(row)
        ui.evidenceLabel.text = evidenceText(row)
        cited = {i for c in row.get("evidence") or [] for i in c.get("source") or []} | set(row.get("sources") or [])
        ui.evidenceLabel.toolTip = sourcesText(sorted(cited), self.session.checklist.get("sources", {}))
        ui.impressionLabel.toolTip = "\n".join(f"{r['condition']}: {r['evidence']}" for r in
                                                (part or {}).get("impression", {}).get("reasons", []))
        ui.answerLabel.text = answerText(row)
        for answer, name in ANSWER_BUTTONS.items():
            getattr(ui, name).checked = row.get("answer") == answer
