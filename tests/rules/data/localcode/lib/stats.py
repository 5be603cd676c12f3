import numpy as np

from .util import clamp


def summarize(values):
    return f"mean={clamp(float(np.mean(values)), 0, 100):.3f}\n"
