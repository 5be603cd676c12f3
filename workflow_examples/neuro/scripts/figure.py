"""The group figure (a `script:` rule): each subject's mid-axial FA map, then every
subject's mean FA per region, controls against patients.

The PNG is the same bytes on every run: Agg draws deterministically with the fonts that ship
with matplotlib, and the PNG carries no time stamp; the Software line is dropped anyway, so
the file does not name the version that drew it.
"""

import sys
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

# Snakemake puts only this script's folder on sys.path; the workflow's lib/ is one up.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821 - injected
from lib.bids import load_nifti

COLOURS = {"control": "tab:blue", "patient": "tab:red"}


def draw_maps(figure, grid, paths, subjects, groups):
    for column, (path, subject) in enumerate(zip(paths, subjects, strict=True)):
        fa = load_nifti(path)
        axes = figure.add_subplot(grid[0, column])
        axes.imshow(fa[:, :, fa.shape[2] // 2].T, origin="lower", cmap="gray", vmin=0, vmax=1)
        axes.set_title(f"{subject}\n{groups[subject]}", fontsize=8, color=COLOURS[groups[subject]])
        axes.set_axis_off()


def draw_regions(axes, table):
    regions = [r for r in table["region"].unique() if r != "brain"]
    for offset, group in zip((-0.15, 0.15), COLOURS, strict=True):
        rows = table[table["group"] == group]
        for x, region in enumerate(regions):
            values = rows.loc[rows["region"] == region, "fa_mean"]
            xs = [x + offset] * len(values)
            label = group if x == 0 else None
            axes.scatter(xs, values, s=18, color=COLOURS[group], label=label)
    axes.set_xticks(range(len(regions)), [r.replace("_", " ") for r in regions])
    axes.set_ylabel("mean FA")
    axes.legend(frameon=False, fontsize=8)


def main(smk):
    table = pd.read_csv(smk.input.table, sep="\t")
    groups = dict(zip(table["participant_id"], table["group"], strict=True))
    subjects = list(smk.params.subjects)
    figure = Figure(figsize=(1.4 * len(subjects), 4.6), dpi=100, layout="constrained")
    grid = figure.add_gridspec(2, len(subjects), height_ratios=[1, 1.6])
    draw_maps(figure, grid, smk.input.fa, subjects, groups)
    draw_regions(figure.add_subplot(grid[1, :]), table)
    figure.savefig(smk.output.png, format="png", metadata={"Software": None})


main(snakemake)  # noqa: F821 - Snakemake injects `snakemake` into scripts
