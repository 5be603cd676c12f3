"""Reading and writing the files of a BIDS diffusion dataset, byte for byte the same on
every machine that has the same packages."""

import json

import nibabel as nib
import numpy as np

# Voxel size in mm: the phantom's affine.
VOXEL_MM = 2.0


def save_nifti(data, path, dtype=np.float32):
    """Write ``data`` as NIfTI-1. For ``.nii.gz``, nibabel's writer leaves the gzip header's
    time stamp at 0 and its file name empty, so reruns give the same bytes."""
    affine = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
    image = nib.Nifti1Image(np.asarray(data, dtype=dtype), affine)
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, path)


def load_nifti(path):
    return np.asanyarray(nib.load(path).dataobj)


def write_bval_bvec(bvals, bvecs, bval_path, bvec_path):
    """FSL-style text files, as BIDS asks: one row of b-values, three rows of x, y, z."""
    with open(bval_path, "w") as fh:
        fh.write(" ".join(f"{b:.0f}" for b in bvals) + "\n")
    with open(bvec_path, "w") as fh:
        for axis in np.asarray(bvecs).T:
            fh.write(" ".join(f"{v:.6f}" for v in axis) + "\n")


def write_json(data, path):
    with open(path, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")


def write_tsv(rows, columns, path):
    """A TSV with a header line; floats with six decimals."""
    with open(path, "w") as fh:
        fh.write("\t".join(columns) + "\n")
        for row in rows:
            cells = (f"{row[c]:.6f}" if isinstance(row[c], float) else str(row[c]) for c in columns)
            fh.write("\t".join(cells) + "\n")
