"""DICOM files made by pydicom for `cargo xtask dicom`, from 8-bit PGM test images.

    python make_files.py OUT IMAGE.pgm...

For each IMAGE.pgm (and IMAGE.j2k, IMAGE.jxl beside it, made by OpenJPEG's opj_compress and
libjxl's cjxl, both lossless), writes OUT/<variant>/<IMAGE>.dcm:

- plain: 8-bit MONOCHROME2, explicit VR little endian (dcmtk transcodes it further);
- j2k: the JPEG 2000 codestream encapsulated (JPEG 2000 Image Compression (Lossless Only));
- jxl: the JPEG XL codestream encapsulated (JPEG XL Lossless);
- ct12: a CT as a PACS stores it: 12 bits stored in 16, Hounsfield units through
  RescaleSlope 1 / RescaleIntercept -1024, no window;
- ct16-signed-windowed: 16 bits signed, with a window spanning the stored range;
- mr10: 10 bits stored in 16, no window.

Deeper images hold round(p * (2^bits - 1) / 255) (minus 2^(bits-1) when signed), so the
runtime's rule (modality LUT, then the window, else the stored range) reads back p exactly.
"""

import sys
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    UID,
    generate_uid,
)

JPEG_XL_LOSSLESS = UID("1.2.840.10008.1.2.4.110")


def read_pgm(path):
    data = path.read_bytes()
    fields = []
    at = 0
    while len(fields) < 4:
        while data[at : at + 1].isspace():
            at += 1
        start = at
        while not data[at : at + 1].isspace():
            at += 1
        fields.append(data[start:at])
    magic, width, height, top = fields
    assert magic == b"P5" and int(top) == 255, f"{path}: not an 8-bit binary PGM"
    width, height = int(width), int(height)
    pixels = data[at + 1 : at + 1 + width * height]
    assert len(pixels) == width * height, f"{path}: truncated"
    return width, height, pixels


def dataset(sop_class, transfer_syntax, width, height):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Test^Image"
    ds.PatientID = "TEST"
    ds.Modality = {CTImageStorage: "CT", MRImageStorage: "MR"}.get(sop_class, "OT")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = height
    ds.Columns = width
    ds.PixelRepresentation = 0
    return ds


def with_bits(ds, allocated, stored):
    ds.BitsAllocated = allocated
    ds.BitsStored = stored
    ds.HighBit = stored - 1
    return ds


def deeper(sop_class, width, height, pixels, bits, signed):
    ds = with_bits(dataset(sop_class, ExplicitVRLittleEndian, width, height), 16, bits)
    top = (1 << bits) - 1
    offset = 1 << (bits - 1) if signed else 0
    values = [(p * top + 127) // 255 - offset for p in pixels]
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = b"".join(v.to_bytes(2, "little", signed=True) for v in values)
    return ds


def main(out, images):
    for image in map(Path, images):
        width, height, pixels = read_pgm(image)
        name = image.stem + ".dcm"
        files = {}

        plain = with_bits(dataset(SecondaryCaptureImageStorage, ExplicitVRLittleEndian, width, height), 8, 8)
        plain.PixelData = pixels
        files["plain"] = plain

        for variant, suffix, syntax in [("j2k", ".j2k", JPEG2000Lossless), ("jxl", ".jxl", JPEG_XL_LOSSLESS)]:
            ds = with_bits(dataset(SecondaryCaptureImageStorage, syntax, width, height), 8, 8)
            ds.PixelData = encapsulate([image.with_suffix(suffix).read_bytes()])
            ds["PixelData"].VR = "OB"
            ds["PixelData"].is_undefined_length = True
            files[variant] = ds

        ct12 = deeper(CTImageStorage, width, height, pixels, 12, signed=False)
        ct12.RescaleIntercept = -1024
        ct12.RescaleSlope = 1
        ct12.RescaleType = "HU"
        files["ct12"] = ct12

        ct16 = deeper(CTImageStorage, width, height, pixels, 16, signed=True)
        ct16.RescaleIntercept = 0
        ct16.RescaleSlope = 1
        low, high = -(1 << 15), (1 << 15) - 1
        ct16.WindowCenter = (low + high) / 2 + 0.5
        ct16.WindowWidth = high - low + 1
        files["ct16-signed-windowed"] = ct16

        files["mr10"] = deeper(MRImageStorage, width, height, pixels, 10, signed=False)

        for variant, ds in files.items():
            folder = Path(out) / variant
            folder.mkdir(parents=True, exist_ok=True)
            # pydicom 3.0 does not know JPEG XL's transfer syntaxes: it is told how to encode
            # (every variant here is explicit VR little endian), so it writes the preamble and
            # file meta group as given.
            ds.preamble = b"\0" * 128
            # Completes the meta group (group length, version, implementation UID) in place.
            write_file_meta_info(DicomBytesIO(), ds.file_meta, enforce_standard=True)
            ds.save_as(folder / name, implicit_vr=False, little_endian=True, force_encoding=True)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
