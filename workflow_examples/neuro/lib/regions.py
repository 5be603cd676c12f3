"""Region statistics of diffusion maps: per tissue label of the segmentation, inside the
brain mask."""

COLUMNS = ["region", "voxels", "fa_mean", "fa_sd", "md_mean", "md_sd"]


def region_rows(fa, md, mask, labels, names):
    """One row per region (and one for the whole mask). MD in um^2/ms (mm^2/s x 1000)."""
    regions = {"brain": mask.astype(bool)}
    regions.update({name: mask.astype(bool) & (labels == label) for label, name in names.items()})
    return [_stats(name, fa[inside], md[inside] * 1e3) for name, inside in regions.items()]


def _stats(name, fa, md):
    if fa.size == 0:
        return {"region": name, "voxels": 0, **dict.fromkeys(COLUMNS[2:], float("nan"))}
    return {
        "region": name,
        "voxels": int(fa.size),
        "fa_mean": float(fa.mean()),
        "fa_sd": float(fa.std()),
        "md_mean": float(md.mean()),
        "md_sd": float(md.std()),
    }
