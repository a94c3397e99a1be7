"""``livermets report`` on a small phantom review: every number in the HTML table and the text is the review's,
key images are present per lesion and in radiological orientation, an unfinished review lists its unanswered
items, and a lesion without measurements says why in its rows."""

from __future__ import annotations

import base64
import json
import re
import shutil
from html import escape as escape_html
from html.parser import HTMLParser

import numpy as np
import pytest
import SimpleITK as sitk
from lesion_fixtures import phantom

from LiverMetsReviewLib.checklist.values import lesion_values
from LiverMetsReviewLib.cli import main
from LiverMetsReviewLib.lesions.markups import Seed, write_seeds
from LiverMetsReviewLib.phantom import write_phantom
from LiverMetsReviewLib.report.fmt import DECIMALS
from LiverMetsReviewLib.report.key_images import PIXELS, render_key_image, robust_window
from LiverMetsReviewLib.report.sections import ENHANCEMENT_ITEMS

PICK = ("crc_met", "cyst")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    study = phantom(5, "normal", "small")
    write_phantom(study, root / "study")
    picked = [les for les in study.truth["lesions"] if les["id"] in PICK]
    write_seeds(root / "seeds.mrk.json", [Seed(les["id"], tuple(les["centre_mm"])) for les in picked])
    assert main(["measure", "--study", str(root / "study"), "--seeds", str(root / "seeds.mrk.json"),
                 "-o", str(root / "lesions")]) == 0
    answers = root / "answers.json"
    answers.write_text(json.dumps({"crc_met": {"hbp_hypointense": {"answer": "yes", "note": "checked"}}}))
    assert main(["review", "--study", str(root / "study"), "--lesions", str(root / "lesions"), "--answers",
                 str(answers), "--context", str(root / "study" / "clinical_context.json"),
                 "-o", str(root / "review")]) == 0
    # the review records its inputs: the report finds the lesions and the study without being told
    assert main(["report", "--review", str(root / "review"), "-o", str(root / "report")]) == 0
    return root


class _Cells(HTMLParser):
    """Cells of the lesion table: {lesion id: {quantity: (data-value or None, text)}} and the images."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, tuple[str | None, str]]] = {}
        self.images: dict[str, list[tuple[str, str]]] = {}
        self._row = self._cell = self._section = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-lesion" in a:
            self._row = a["data-lesion"]
            self.rows[self._row] = {}
        if tag == "section":
            self._section = a["data-lesion"]
        if tag == "td" and self._row and "data-quantity" in a:
            self._cell, self._value, self._text = a["data-quantity"], a.get("data-value"), ""
        if tag == "img" and self._section:
            self.images.setdefault(self._section, []).append((a["data-series"], a["src"]))

    def handle_data(self, data):
        if self._cell:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell:
            self.rows[self._row][self._cell] = (self._value, self._text)
            self._cell = None
        if tag == "tr":
            self._row = None


def _parse(path):
    p = _Cells()
    p.feed(path.read_text())
    return p


def _expected(root):
    review = json.loads((root / "review" / "review.json").read_text())
    meas = {m["id"]: lesion_values(m["measurements"])[0]
            for m in json.loads((root / "lesions" / "measurements.json").read_text())["lesions"]}
    return review, meas


def test_table_numbers_are_the_review_s(folder):
    review, meas = _expected(folder)
    cells = _parse(folder / "report" / "report.html").rows
    assert set(cells) == {les["id"] for les in review["lesions"]}
    for les in review["lesions"]:
        v, row = meas[les["id"]], cells[les["id"]]
        truth = {"long_axis": les["long_axis_mm"], "short_axis": v["lesion.short_axis"],
                 "volume": v["lesion.volume"], "adc": v["lesion.adc.lesion.median"],
                 "fat": v.get("lesion.pdff.lesion.median") or v["lesion.ff_dixon.lesion.median"]}
        for k, want in truth.items():
            value, text = row[k]
            assert float(value) == want, (les["id"], k)
            assert float(text) == pytest.approx(want, abs=0.51 * 10 ** -DECIMALS[k]), (les["id"], k)
        assert int(row["segment"][0]) == les["couinaud_segment"]
        assert row["impression"][1] == les["impression"]["category"]
        assert row["recommendation"][1] == les["impression"]["recommendation"]


def test_text_report_numbers_are_the_review_s(folder):
    review, meas = _expected(folder)
    borders = {m["id"]: m.get("couinaud_border")
               for m in json.loads((folder / "lesions" / "measurements.json").read_text())["lesions"]}
    text = (folder / "report" / "report.txt").read_text()
    blocks = re.split(r"\n(?=\d+\. Lesion )", text.split("\n\n")[1])
    assert len(blocks) == len(review["lesions"])
    for n, (les, block) in enumerate(zip(review["lesions"], blocks, strict=True), 1):
        m = re.match(rf"{n}\. Lesion (\S+), segment (\w+)(?: \((\S+ border)\))?: ([\d.]+) mm x ([\d.]+) mm, "
                     r"([\d.]+) mL\. Impression: (.+?)[.(]", block)
        assert m, block
        assert m[1] == les["id"]
        assert m[2] == {4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII"}.get(les["couinaud_segment"], m[2])
        assert m[3] == borders[les["id"]]  # the border call of measurements.json, or none
        v = meas[les["id"]]
        assert float(m[4]) == pytest.approx(les["long_axis_mm"], abs=0.051)
        assert float(m[5]) == pytest.approx(v["lesion.short_axis"], abs=0.051)
        assert float(m[6]) == pytest.approx(v["lesion.volume"], abs=0.0051)
        assert m[7].strip() == les["impression"]["category"]
        assert les["impression"]["recommendation"].rstrip(".") in block
        items = {i["id"]: i for i in les["items"]}
        for reason in les["impression"]["reasons"]:  # each driver's evidence in words, as the review states it
            for c in items[reason["item"]]["evidence"]:
                assert c["text"] in block, (les["id"], c["text"])
                assert c["holds"] is None or "lesion." not in c["text"], c["text"]  # a name, not a value key
    assert "does not replace" in text or "do not replace" in text


def test_pitfalls_are_named_as_the_checklist_names_them(folder):
    """The reader sees each pitfall in play under its checklist name (with the lesions it concerns), not an id."""
    review = json.loads((folder / "review" / "review.json").read_text())
    in_play = {p["item"]: p["name"] for les in review["lesions"] for p in les["pitfalls_in_play"]}
    assert in_play, "the small phantom's review puts no pitfall in play: the test would prove nothing"
    line = next(s for s in (folder / "report" / "report.txt").read_text().splitlines()
                if s.startswith("Pitfalls considered:"))
    for item, name in in_play.items():
        assert f"{name} (" in line and f"{item.replace('_', ' ')} (" not in line, (item, name, line)
    html = (folder / "report" / "report.html").read_text()
    assert all(escape_html(name) in html for name in in_play.values())
    md = next(s for s in (folder / "review" / "review.md").read_text().splitlines()
              if s.startswith("- Pitfalls in play:"))
    assert all(f"{name} (" in md for name in in_play.values()), md


def test_key_images_per_lesion(folder):
    parsed = _parse(folder / "report" / "report.html")
    for lid in PICK:
        shown = dict(parsed.images[lid])
        assert set(shown) == {"HBP", "Arterial", "Portal venous", "T2", "DWI high b", "ADC"}
        for src in shown.values():
            png = base64.b64decode(src.split(",", 1)[1])
            path = folder / "k.png"
            path.write_bytes(png)
            img = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))  # an independent PNG reader
            assert img.shape == (PIXELS, PIXELS, 3) and img.std() > 5


def test_patient_left_shows_on_the_image_right(tmp_path):
    rng = np.random.default_rng()
    img = sitk.GetImageFromArray(rng.normal(100, 5, (9, 64, 64)).astype(np.float32))
    img.SetSpacing((1.5, 1.5, 4.0))
    img.SetOrigin(tuple(rng.uniform(-50, 50, 3)))
    centre = img.TransformIndexToPhysicalPoint((32, 32, 4))
    side = rng.uniform(8, 18)  # mm towards the patient's left (+x in LPS)
    a = sitk.GetArrayFromImage(img)
    mark = img.TransformPhysicalPointToIndex((centre[0] + side, centre[1], centre[2]))
    a[4, mark[1] - 1:mark[1] + 2, mark[0] - 1:mark[0] + 2] = 1000.0
    marked = sitk.GetImageFromArray(a)
    marked.CopyInformation(img)
    key = render_key_image(marked, None, centre, 60.0, robust_window(img))
    (tmp_path / "k.png").write_bytes(key.png)
    rgb = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "k.png")))
    bright = np.argwhere(rgb[:, :, 0] == 255)
    bright = bright[(bright[:, 0] > 10) & (bright[:, 0] < PIXELS - 12)]  # leave out the R/L marks and scale bar
    bright = bright[(bright[:, 1] > 10) & (bright[:, 1] < PIXELS - 10)]
    assert bright.size
    assert np.median(bright[:, 1]) == pytest.approx(PIXELS / 2 + side / key.pixel_mm, abs=3)


def test_unfinished_review_lists_unanswered_items(folder):
    review, _ = _expected(folder)
    html = (folder / "report" / "report.html").read_text()
    for les in review["lesions"]:
        section = html.split(f'<section data-lesion="{les["id"]}">')[1].split("</section>")[0]
        open_ = [i["name"] for i in les["items"] if i["applicable"] and not i["answer"]]
        assert f"Not yet answered by the reader ({len(open_)})" in section
        listed = re.findall(r'<li class="unanswered">(.+?) \(suggested', section)
        assert sorted(listed) == sorted(open_)
    crc = html.split('<section data-lesion="crc_met">')[1].split("</section>")[0]
    assert "reader answered <b>yes</b>" in crc


def test_missing_measurements_and_series_give_reasons(folder, tmp_path, capsys):
    lesions = tmp_path / "lesions"
    shutil.copytree(folder / "lesions", lesions)
    doc = json.loads((lesions / "measurements.json").read_text())
    for les in doc["lesions"]:
        les["measurements"] = [r for r in les["measurements"] if r["quantity"] not in ("adc", "fat_fraction")]
    del doc["maps"]["pdff"]  # as when the study has no multi-echo series
    (lesions / "measurements.json").write_text(json.dumps(doc))
    study = tmp_path / "study"
    shutil.copytree(folder / "study", study)
    roles = json.loads((study / "roles.json").read_text())
    roles["series"] = [s for s in roles["series"] if s["role"] != "t2"]
    (study / "roles.json").write_text(json.dumps(roles))
    out = tmp_path / "out"
    assert main(["report", "--review", str(folder / "review"), "--lesions", str(lesions), "--study", str(study),
                 "-o", str(out)]) == 0
    parsed = _parse(out / "report.html")
    for row in parsed.rows.values():
        assert row["adc"][0] is None and "ADC" in row["adc"][1]
        assert row["fat"][0] is None and "fat" in row["fat"][1]
    html = (out / "report.html").read_text()
    assert html.count('data-missing="T2">T2: no t2 series in the study') == len(PICK)
    assert '<tr data-map="pdff"><td>pdff</td><td class="missing"' in html
    assert main(["report", "--review", str(tmp_path / "nowhere"), "-o", str(out)]) != 0
    err = capsys.readouterr().err
    assert "review.json" in err and "Traceback" not in err


def test_pdf_has_the_report_s_pages_and_text(folder):
    from pypdf import PdfReader

    review, meas = _expected(folder)
    pdf = PdfReader(folder / "report" / "report.pdf")
    assert len(pdf.pages) >= 2
    for page in pdf.pages:  # A4 portrait in points
        assert float(page.mediabox.width) == pytest.approx(595.3, abs=1.0)
        assert float(page.mediabox.height) == pytest.approx(841.9, abs=1.0)
    text = re.sub(r"\s+", " ", " ".join(p.extract_text() for p in pdf.pages))
    assert text.startswith("Liver MRI lesion report")
    assert "do not replace the radiologist" in text
    html = (folder / "report" / "report.html").read_text()
    for les in review["lesions"]:
        assert f"Lesion {les['id']}," in text
        v = meas[les["id"]]
        for kind, want in (("long_axis", les["long_axis_mm"]), ("volume", v["lesion.volume"])):
            assert f"{want:.{DECIMALS[kind]}f}" in text.replace(" ", "")  # a narrow cell may wrap a number
    images = sum(len(p.images) for p in pdf.pages)
    assert images == html.count("data:image/png;base64,")


def test_header_context_maps_and_pattern(folder):
    review, _ = _expected(folder)
    html = (folder / "report" / "report.html").read_text()
    assert "not from DICOM: digital phantom (seed 5" in html
    ctx = json.loads((folder / "study" / "clinical_context.json").read_text())
    assert ctx["primary_tumour"] in html and "from the context the review used" in html
    measured = json.loads((folder / "lesions" / "measurements.json").read_text())
    for name in ("adc", "pdff"):  # measure computes PDFF from the study's multi-echo series
        assert f'<tr data-map="{name}"><td>{name}</td><td>{measured["maps"][name]["quantity"]}' in html
    cells = _parse(folder / "report" / "report.html").rows
    for les in review["lesions"]:
        holds = [i["name"] for i in les["items"] if i["applicable"] and i["id"] in ENHANCEMENT_ITEMS
                 and (i["answer"] or i["suggested"]) == "yes"]
        shown = cells[les["id"]]["pattern"][1].split("; ")
        assert [s.removesuffix(" (reader)") for s in shown] == (holds or ["none of the pattern items holds"])


def test_no_pyside_still_writes_html_and_text(folder, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "PySide6", None)  # import PySide6 raises ImportError
    out = tmp_path / "out"
    assert main(["report", "--review", str(folder / "review"), "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "note: report.pdf needs Qt for Python" in said and "PySide6" in said
    assert (out / "report.html").exists() and (out / "report.txt").exists() and not (out / "report.pdf").exists()


def _key_image_of(a: np.ndarray, inside: np.ndarray, tmp_path) -> tuple:
    """The key image of drawn slices ``a`` (1 x 1 x 3 mm) with the lesion ``inside``, centred on voxel (40, 40, 4),
    and its PNG read back as grey levels (green channel)."""
    img = sitk.GetImageFromArray(a)
    img.SetSpacing((1.0, 1.0, 3.0))
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(img)
    key = render_key_image(img, mask, img.TransformIndexToPhysicalPoint((40, 40, 4)), 50.0)
    (tmp_path / "k.png").write_bytes(key.png)
    return key, sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "k.png")))[:, :, 1].astype(float)


def test_key_image_window_puts_the_liver_at_mid_grey(tmp_path):
    """A bright-liver series (as HBP) with a dark lesion: the liver around the lesion shows at LIVER_GREY, not white,
    and the lesion darker than it, whatever the drawn signal levels."""
    from LiverMetsReviewLib.report.key_images import LIVER_GREY

    rng = np.random.default_rng()
    liver = rng.uniform(500, 3000)
    lesion = liver * rng.uniform(0.3, 0.7)
    a = rng.normal(liver, liver * 0.02, (9, 80, 80)).astype(np.float32)
    a[:, :5, :] = rng.uniform(0, 20)  # a strip of background
    zz, yy, xx = np.mgrid[:9, :80, :80]
    inside = (yy - 40) ** 2 + (xx - 40) ** 2 < 8 ** 2
    a[inside] = lesion
    key, grey = _key_image_of(a, inside, tmp_path)
    # The window puts the drawn liver level at LIVER_GREY. (Not the median of a small ring of the PNG: with only
    # 2 %-noise liver in the crop the window is narrow, and the interpolated pixels' noise moves a ring's median by
    # +-30 grey levels from draw to draw.)
    lo, hi = key.window
    assert (liver - lo) / (hi - lo) == pytest.approx(LIVER_GREY, abs=0.03)
    ring = grey[20:30, 60:100]  # liver between lesion and the edge of the crop
    assert grey[78:82, 78:82].mean() < np.median(ring) - 40


def test_key_image_bright_lesion_is_not_clipped(tmp_path):
    """A lesion drawn brighter than the liver (T2 cyst or haemangioma, arterial hyperenhancement), at a drawn ratio:
    its inside is not clipped to white, brighter pixels stay brighter, and the drawn liver level still shows at
    LIVER_GREY (the scale bends at the liver); a dark lesion leaves the linear liver window as it was."""
    from LiverMetsReviewLib.report.key_images import LIVER_GREY, liver_levels, to_grey

    rng = np.random.default_rng()
    liver = rng.uniform(300, 3000)
    lesion = liver * rng.uniform(1.5, 5.0)
    a = rng.normal(liver, liver * 0.02, (9, 80, 80)).astype(np.float32)
    zz, yy, xx = np.mgrid[:9, :80, :80]
    r2 = (yy - 40) ** 2 + (xx - 40) ** 2
    inside = r2 < 9 ** 2
    a[inside] = rng.normal(lesion, lesion * 0.02, int(inside.sum()))
    a[r2 < 3 ** 2] = lesion * 1.3  # a brighter core: must stay brighter than the rest of the lesion
    key, grey = _key_image_of(a, inside, tmp_path)
    mm = (np.arange(PIXELS) - PIXELS / 2 + 0.5) * key.pixel_mm  # pixel centres from the crop centre
    rr = np.hypot(*np.meshgrid(mm, mm, indexing="ij"))
    body, core = grey[(rr > 4.5) & (rr < 7.0)], grey[rr < 2.0]  # well inside the drawn rings (1-mm voxels)
    assert np.median(body) < 250 and np.mean(body == 255) < 0.1, "the lesion is clipped to white"
    assert np.median(core) > np.median(body) + 3
    assert key.liver == pytest.approx(liver, rel=0.01)
    lo, hi = key.window
    assert to_grey(np.array([liver]), lo, hi, key.liver)[0] / 255 == pytest.approx(LIVER_GREY, abs=0.03)
    assert hi > lesion  # white above the drawn lesion level

    # A lesion darker than the liver: one straight line from black through the liver to white, as before.
    dark = np.where(inside[4], liver * 0.4, a[4])
    lo, mid, hi = liver_levels(dark, inside[4])
    assert (mid - lo) / (hi - lo) == pytest.approx(LIVER_GREY, abs=1e-9)
    x = np.linspace(lo, hi, 7)
    np.testing.assert_allclose(to_grey(x, lo, hi, mid), to_grey(x, lo, hi), atol=1e-9)


def test_phantom_cyst_is_not_white_on_t2(folder):
    """The phantom's cyst is far brighter than liver on T2 (its truth): in the report's T2 key image its inside is not
    flat white, and the liver around it is about mid-grey."""
    from LiverMetsReviewLib.report.key_images import LIVER_GREY

    study = phantom(5, "normal", "small")
    t2 = study.series_by_role("t2").image
    cyst = next(les for les in study.truth["lesions"] if les["id"] == "cyst")
    liver_label = next(s["label"] for s in study.segments if s["id"] == "liver")
    labels = sitk.GetArrayFromImage(study.labelmap_on("t2", t2))
    signal = sitk.GetArrayFromImage(t2)
    assert np.median(signal[labels == cyst["label"]]) > 2 * np.median(signal[labels == liver_label])  # truth: bright
    src = dict(_parse(folder / "report" / "report.html").images["cyst"])["T2"]
    (folder / "t2.png").write_bytes(base64.b64decode(src.split(",", 1)[1]))
    rgb = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "t2.png"))).astype(float)
    plain = (rgb[:, :, 0] == rgb[:, :, 1]) & (rgb[:, :, 1] == rgb[:, :, 2])  # not the outline, axis line or marks
    grey, c = rgb[:, :, 1], PIXELS / 2 - 0.5
    ring = np.hypot(*(np.mgrid[:PIXELS, :PIXELS] - c))
    centre = grey[plain & (ring < 8)]  # the crop is 2.5 long axes wide: 8 px are well inside the cyst
    assert centre.size > 50 and np.median(centre) < 250 and np.mean(centre == 255) < 0.1, "the cyst is white"
    assert np.median(centre) > 255 * (LIVER_GREY + 0.2)  # and still far brighter than the liver
    around = grey[plain & (ring > 0.6 * c) & (ring < 0.9 * c)]
    assert abs(np.median(around) / 255 - LIVER_GREY) < 0.2


def test_long_lesion_ids_wrap_at_underscores_only(tmp_path):
    """A long id (drawn from words, joined by '_' and '-') wraps in the PDF's lesion-table column only between its
    words: each word stands whole on one line, and the lines read back are the id."""
    from pypdf import PdfReader

    from LiverMetsReviewLib.report.html import breakable
    from LiverMetsReviewLib.report.pdf import html_to_pdf, pyside_qt

    rng = np.random.default_rng()
    words = ["focal", "hypersteatosis", "recurrence", "ablation", "haemangioma", "segment", "metastasis"]
    lid = "".join(w + rng.choice(["_", "-"]) for w in rng.choice(words, 3, replace=False))[:-1]
    assert re.sub("&#8203;", "", breakable(lid)) == lid
    html = (f'<table width="100%"><tr><td width="18%">{breakable(lid)}</td><td width="82%">x</td></tr></table>')
    pdf = html_to_pdf(pyside_qt(), html, tmp_path / "ids.pdf")
    lines = [re.sub(r"[\s\u200b]", "", ln) for ln in PdfReader(pdf).pages[0].extract_text().splitlines()]
    cell = [ln for ln in lines if ln and ln != "x"]
    assert "".join(cell) == lid
    assert len(cell) >= 2  # three long words do not fit on one line of an 18 % column: the test saw a wrap
    for word in re.split("[_-]", lid):
        assert any(word in ln for ln in cell), (word, cell)


def test_pdf_prints_fonts_at_their_point_size(folder):
    """The CSS sets body text to 10 pt; the PDF must print most of its text at that size (measured from the text
    and graphics matrices pypdf reads back), not enlarged by the screen's pixels per point (96/72: 13.3 pt)."""
    from collections import Counter

    from pypdf import PdfReader

    chars: Counter = Counter()

    def visit(text, cm, tm, font, size):
        scale = (tm[0] ** 2 + tm[1] ** 2) ** 0.5 * (cm[0] ** 2 + cm[1] ** 2) ** 0.5
        chars[round(size * scale, 1)] += len(text.strip())

    PdfReader(folder / "report" / "report.pdf").pages[0].extract_text(visitor_text=visit)
    body_pt, _ = chars.most_common(1)[0]
    assert body_pt == pytest.approx(10.0, rel=0.05), chars  # Qt rounds to whole pixels: 9.75-10 pt


def test_segment_text_carries_the_border_call():
    from LiverMetsReviewLib.report.fmt import segment

    assert segment(7) == "segment VII"
    assert segment(7, "VII/VIII border") == "segment VII (VII/VIII border)"
    assert segment(None, "VII/VIII border") == "segment not known"
