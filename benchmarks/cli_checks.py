"""Criteria 6 and 7 of ``validate_measures.py``: the files ``livermets measure`` writes for a drawn study (opened with
slicerio, validated against the markups schema, written -> read -> the same), and bad input through the CLI (one
sentence, non-zero exit, no traceback, nothing written into the output folder, an existing file there untouched).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from LiverMetsReviewLib.cli import main
from LiverMetsReviewLib.lesions.markups import Seed, read_lines, read_seeds, write_lines, write_seeds
from LiverMetsReviewLib.lesions.seg_file import read_layered_segmentation, write_layered_segmentation
from LiverMetsReviewLib.phantom import generate_phantom, write_phantom

SCHEMA = Path(__file__).resolve().parents[2] / "shared" / "slicer-schemas" / "markups-schema-v1.0.3.json"
SENTINEL = "earlier.txt"


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``livermets ARGS`` run in this process; an escaped exception is a traceback."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:  # noqa: BLE001 - the point is to catch what escapes
            err.write(traceback.format_exc())
            code = -1
    return int(code or 0), out.getvalue(), err.getvalue()


def _schema_errors(path: Path) -> list[str]:
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    v = jsonschema.Draft7Validator(schema)
    return [e.message for e in v.iter_errors(json.loads(path.read_text()))]


def check_files(t: Any, out: Path, study, tag: str) -> None:
    """Criterion 6 on the output folder of a successful ``measure`` run."""
    import slicerio

    seg = slicerio.read_segmentation(str(out / "lesions.seg.nrrd"), skip_voxels=True)
    names = [s["name"] for s in seg["segments"]]
    ids = ["liver"] + [les["id"] for les in study.truth["lesions"]]
    t.check("6 seg.nrrd names in slicerio", sorted(names) == sorted(["Liver"] + ids[1:]), f"{tag}: {names}")
    t.check("6 seg.nrrd colours and terminology in slicerio",
            all(len(s.get("color", [])) == 3 and s.get("terminology", {}).get("category") for s in seg["segments"]),
            f"{tag}: {[(s['name'], s.get('color'), s.get('terminology')) for s in seg['segments']]}")
    ref, segs = read_layered_segmentation(out / "lesions.seg.nrrd")
    again = out.parent / (out.name + "_again.seg.nrrd")
    write_layered_segmentation(ref, [{k: s[k] for k in ("id", "name", "mask", "color", "terminology", "tags")
                                      if k in s} for s in segs], again)
    ref2, segs2 = read_layered_segmentation(again)
    same = (len(segs) == len(segs2) and all(
        a["id"] == b["id"] and a["name"] == b["name"] and np.array_equal(a["mask"], b["mask"])
        and np.allclose(a["color"], b["color"]) for a, b in zip(segs, segs2, strict=True))
        and np.allclose(ref.GetOrigin(), ref2.GetOrigin()))
    t.check("6 seg.nrrd write -> read -> same", same, f"{tag}: segments differ after a round trip")
    for name in ("lesions.mrk.json", "diameters.mrk.json"):
        errors = _schema_errors(out / name) if SCHEMA.exists() else ["schema absent"]
        t.check("6 markups valid against schema 1.0.3", not errors, f"{tag} {name}: {errors[:3]}")
    seeds = read_seeds(out / "lesions.mrk.json")
    write_seeds(out.parent / "seeds_again.mrk.json", seeds)
    t.check("6 markups write -> read -> same", read_seeds(out.parent / "seeds_again.mrk.json") == seeds,
            f"{tag}: seeds differ after a round trip")
    lines = read_lines(out / "diameters.mrk.json")
    write_lines(out.parent / "lines_again.mrk.json", lines)
    t.check("6 markups write -> read -> same", read_lines(out.parent / "lines_again.mrk.json") == lines,
            f"{tag}: lines differ after a round trip")


def _point_of_label(study, names: tuple[str, ...], role: str = "t1_hepatobiliary") -> tuple[float, float, float]:
    """The deepest truth voxel of an organ (by compartment name) as LPS mm."""
    from scipy import ndimage as ndi

    labels = [c.label for c in study.model.compartments if c.name in names]
    img = study.series_by_role(role).image
    arr = np.isin(sitk.GetArrayFromImage(study.compartments_on(role, img)), labels)
    depth = ndi.distance_transform_edt(arr)
    k = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return img.TransformIndexToPhysicalPoint([int(v) for v in k[::-1]])


def bad_cases(study, root: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (CLI arguments, what the sentence must name) for every bad input of criterion 7."""
    les = study.truth["lesions"]
    img = study.series_by_role("t1_hepatobiliary").image
    corner = img.TransformIndexToPhysicalPoint([1, 1, img.GetSize()[2] // 2])  # air, inside the image
    seeds = {
        "seed outside the image": [Seed("far", (0.0, 0.0, 9999.0))],
        "seed outside the liver": [Seed("spleen", _point_of_label(study, ("spleen",)))],
        "seed in a vessel": [Seed("vessel", _point_of_label(study, ("portal_vein", "hepatic_veins")))],
        "seed on an empty region": [Seed("air", tuple(corner))],
        "duplicate seed labels": [Seed("same", tuple(les[0]["centre_mm"])), Seed("same", tuple(les[-1]["centre_mm"]))],
        "two seeds in one lesion": [Seed("a", tuple(les[0]["centre_mm"])), Seed("b", tuple(les[0]["centre_mm"]))],
    }
    cases: dict[str, tuple[list[str], str]] = {}
    for name, pts in seeds.items():
        path = root / (name.replace(" ", "_") + ".mrk.json")
        write_seeds(path, pts)
        cases[name] = (["--study", str(root / "study"), "--seeds", str(path)], path.name)
    empty = root / "no_points.mrk.json"
    doc = json.loads((root / "seed_outside_the_image.mrk.json").read_text())
    doc["markups"][0]["controlPoints"] = []
    empty.write_text(json.dumps(doc))
    cases["seeds file with no points"] = (["--study", str(root / "study"), "--seeds", str(empty)], empty.name)
    cases["missing study folder"] = (["--study", str(root / "nowhere"), "--seeds", str(root / "seeds.mrk.json")],
                                     "nowhere")
    other = root / "study_other_geometry"
    if not other.exists():
        shutil.copytree(root / "study", other)
        t2 = next(other.glob("t2*.nrrd"), None)
        if t2 is not None:
            im = sitk.ReadImage(str(t2))
            im.SetOrigin([v + 900.0 for v in im.GetOrigin()])  # far from the other series: nothing in common
            sitk.WriteImage(im, str(t2))
    cases["series with different geometry"] = (["--study", str(other), "--seeds", str(root / "seeds.mrk.json")],
                                               "t2")
    return cases


def check_bad_input(t: Any, root: Path, study, tag: str) -> None:
    for name, (args, names) in bad_cases(study, root).items():
        for cmd in ("measure", "liver"):
            if cmd == "liver" and name not in ("missing study folder", "series with different geometry",
                                               "seed outside the image", "seed outside the liver"):
                continue
            out = root / f"out_{cmd}_{name.replace(' ', '_')}"
            out.mkdir(exist_ok=True)
            (out / SENTINEL).write_text("kept")
            if cmd == "liver":
                a = ["liver", "--study", args[1], "-o", str(out)]
                if name.startswith("seed "):
                    a += ["--seed", *[str(v) for v in read_seeds(Path(args[3]))[0].position_lps]]
            else:
                a = ["measure", *args, "-o", str(out), "--no-maps"]
            code, _, err = run_cli(a)
            lines = [x for x in err.strip().splitlines() if x.strip()]
            left = sorted(p.name for p in out.iterdir())
            ok = (code not in (0, -1) and "Traceback" not in err and len(lines) == 1 and left == [SENTINEL]
                  and (out / SENTINEL).read_text() == "kept")
            t.check("7 bad input: one sentence, exit != 0, nothing written", ok,
                    f"{tag} {cmd} / {name}: exit {code}, left {left}, said: {err.strip()[:400]!r}")
            t.check("7 bad input: the sentence names the file or point", names.lower() in err.lower(),
                    f"{tag} {cmd} / {name}: '{names}' not in {err.strip()[:300]!r}")


def cli_checks(t: Any, seed: int, size: str, root: Path) -> None:
    study = generate_phantom(seed, "normal", size=size, vary=True)
    write_phantom(study, root / "study")
    write_seeds(root / "seeds.mrk.json", [Seed(les["id"], tuple(les["centre_mm"])) for les in study.truth["lesions"]])
    tag = f"seed {seed} normal"
    code, _, err = run_cli(["measure", "--study", str(root / "study"), "--seeds", str(root / "seeds.mrk.json"),
                            "-o", str(root / "out"), "--no-maps"])
    t.check("6 measure runs on a drawn study", code == 0, f"{tag}: exit {code}: {err[-600:]}")
    if code == 0:
        check_files(t, root / "out", study, tag)
    check_bad_input(t, root, study, tag)
