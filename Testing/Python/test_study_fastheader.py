"""The fast header reader must agree with pydicom on every classic real file in ../shared/data.

Reference: pydicom's own parse of the same file (values of every tag the classifier reads, and the
diffusion facts derived from them), plus synthetic files with undefined-length sequences.
"""

from __future__ import annotations

import gzip

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from test_study_classify import save, write_series

from conftest import shared_path
from LiverMetsReviewLib.study.bvalues import diffusion_from_dataset, numbers
from LiverMetsReviewLib.study.fastheader import _KEYWORDS, read_fast_header
from LiverMetsReviewLib.study.scan import iter_files


def _norm(value):
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).rstrip(b"\x00 ")
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [_norm(v) for v in value]
    vals = numbers(value)
    if vals and not isinstance(value, str):
        return vals
    text = str(value).strip()
    try:
        return [float(text)]
    except ValueError:
        return text


def _pair(path: str):
    data = open(path, "rb").read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return read_fast_header(data), data


def test_fast_reader_agrees_with_pydicom_on_real_files():
    root = shared_path("data")
    checked = 0
    for path in iter_files(root)[::3]:  # a third of the files keeps the test quick; all vendors are in it
        try:
            fast, data = _pair(path)
        except OSError:
            continue
        if fast is None:
            continue
        ref = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data), stop_before_pixels=True)
        for kw in _KEYWORDS:
            assert (kw in fast) == (kw in ref), (path, kw)
            if kw in ref:
                got, want = _norm(fast.get(kw)), _norm(ref[kw].value)
                if isinstance(got, list) and isinstance(want, list) and all(isinstance(v, float) for v in got + want):
                    assert got == pytest.approx(want), (path, kw)
                else:
                    assert str(got).strip() == str(want).strip(), (path, kw, got, want)
        d_fast, d_ref = diffusion_from_dataset(fast), diffusion_from_dataset(ref)
        assert (d_fast.b_value, d_fast.source, d_fast.label, d_fast.is_trace) == (
            d_ref.b_value, d_ref.source, d_ref.label, d_ref.is_trace), path
        if d_ref.direction is not None:
            assert d_fast.direction == pytest.approx(d_ref.direction)
        checked += 1
    assert checked > 250  # GE, Philips (incl. gzip), implicit-VR and mosaic files go through the fast path


def test_undefined_length_sequences_are_skipped(tmp_path):
    folder = write_series(tmp_path, study_uid=generate_uid(), description="t2 haste", te=90.0, tr=1500.0, n_slices=1)
    path = next(folder.iterdir())
    ds = pydicom.dcmread(path)
    inner = Dataset()
    inner.CodeValue = "X"
    nested = Dataset()
    nested.ConceptNameCodeSequence = Sequence([inner])
    ds.ReferencedImageSequence = Sequence([nested, Dataset()])  # written with undefined lengths below
    ds["ReferencedImageSequence"].is_undefined_length = True
    for item in ds.ReferencedImageSequence:
        item.is_undefined_length_sequence_item = True
    save(ds, path)
    raw = path.read_bytes()
    assert raw.count(b"\xfe\xff\xdd\xe0") == 1 and raw.count(b"\xfe\xff\x0d\xe0") == 2  # really undefined
    fast, _ = _pair(str(path))
    assert fast is not None
    assert fast.get("SeriesDescription") == "t2 haste" and float(fast.get("EchoTime")) == 90.0
    assert fast.get("Rows") == 6
