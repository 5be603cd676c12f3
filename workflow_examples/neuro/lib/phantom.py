"""A brain-shaped diffusion phantom, imaged with dipy's voxel simulations.

Tissue: grey matter (isotropic), white matter whose fibres run in circles around the z axis
(one diffusion tensor per voxel, its main axis along the fibre), and ventricles (free
water). Patients' white matter has a lower axial diffusivity, so a lower FA.
"""

import numpy as np
from dipy.core.gradients import generate_bvecs, gradient_table
from dipy.sims.voxel import add_noise, all_tensor_evecs, single_tensor

# Segmentation labels, as in a BIDS dseg.tsv.
LABELS = {1: "grey_matter", 2: "white_matter", 3: "ventricles"}
# b0 signal and diffusivities (mm^2/s) per tissue.
S0 = {1: 1.0, 2: 0.8, 3: 1.6}
GREY_MD = 0.8e-3
FREE_WATER = 3.0e-3
WHITE_AXIAL = 1.7e-3
WHITE_RADIAL = 0.3e-3


def acquisition(n_b0, n_directions, b_value, rng):
    """A single-shell protocol: b-values and unit directions spread over the sphere by
    dipy's electrostatic repulsion (no scanner table to download)."""
    directions = generate_bvecs(n_directions, iters=1000, rng=rng)
    bvals = np.concatenate([np.zeros(n_b0), np.full(n_directions, float(b_value))])
    bvecs = np.vstack([np.zeros((n_b0, 3)), directions])
    return bvals, bvecs


def tissue_labels(shape, rng):
    """Labels 0-3 of one subject's head: ellipsoids whose radii vary a little."""
    grid = np.meshgrid(*[np.linspace(-1.0, 1.0, n) for n in shape], indexing="ij")
    radii = np.array([0.85, 0.9, 0.8]) * (1.0 + rng.normal(0.0, 0.03, 3))

    def inside(scale):
        return sum((g / (r * s)) ** 2 for g, r, s in zip(grid, radii, scale, strict=True)) <= 1.0

    labels = np.zeros(shape, dtype=np.uint8)
    labels[inside((1.0, 1.0, 1.0))] = 1
    labels[inside((0.7, 0.7, 0.7))] = 2
    labels[inside((0.3, 0.15, 0.3))] = 3
    return labels, grid


def fibre_direction(x, y):
    """The unit vector along a circle around the z axis through (x, y)."""
    norm = np.hypot(x, y)
    if norm == 0.0:
        return np.array([1.0, 0.0, 0.0])
    return np.array([-y / norm, x / norm, 0.0])


def clean_signal(labels, grid, gtab, axial):
    """Noise-free diffusion signal of every voxel (last axis: gradients)."""
    signal = np.zeros(labels.shape + (len(gtab.bvals),))
    iso = {1: GREY_MD, 3: FREE_WATER}
    for label, md in iso.items():
        signal[labels == label] = single_tensor(gtab, S0=S0[label], evals=(md, md, md))
    evals = (axial, WHITE_RADIAL, WHITE_RADIAL)
    for index in zip(*np.nonzero(labels == 2), strict=True):
        direction = fibre_direction(grid[0][index], grid[1][index])
        evecs = all_tensor_evecs(direction)
        signal[index] = single_tensor(gtab, S0=S0[2], evals=evals, evecs=evecs)
    return signal


def simulate_subject(shape, gtab, axial_loss, snr, rng):
    """One subject's noisy 4D diffusion volume (float32) and its tissue labels."""
    labels, grid = tissue_labels(shape, rng)
    axial = WHITE_AXIAL * (1.0 - axial_loss) * (1.0 + rng.normal(0.0, 0.02))
    signal = clean_signal(labels, grid, gtab, axial)
    noisy = add_noise(signal, snr, S0[1], noise_type="rician", rng=rng)
    return noisy.astype(np.float32), labels


def make_gtab(bvals, bvecs):
    return gradient_table(bvals, bvecs=bvecs)
