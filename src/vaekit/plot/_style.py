"""The look every vaekit figure shares: sizes, colours, tidy axes and image grids.

Figures are built from :class:`matplotlib.figure.Figure` directly, never through pyplot, so
nothing here reads or changes matplotlib's global state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

TRAIN = "#1f77b4"  # training split
VALIDATION = "#d62728"  # validation split
MUTED = "#8c8c8c"  # secondary curves: the KL weight, the prior, controls
POSITIVE = "#c0392b"  # positive weights
NEGATIVE = "#2471a3"  # negative weights
ACTIVE = "#1f77b4"
INACTIVE = "#c7c7c7"
PANEL_WIDTH = 3.6  # inches per panel in a row of panels
PANEL_HEIGHT = 3.0


def figure(width: float, height: float) -> Figure:
    """A constrained-layout figure of ``width`` x ``height`` inches."""
    return Figure(figsize=(width, height), layout="constrained")


def panels(n: int, height: float = PANEL_HEIGHT, width: float = PANEL_WIDTH) -> list[Axes]:
    """A row of ``n`` axes on a new figure (``ax.figure`` is the figure)."""
    fig = figure(width * n, height)
    return list(np.atleast_1d(fig.subplots(1, n, squeeze=False)[0]))


def tidy(ax: Axes) -> Axes:
    """No top and right frame, a faint grid behind the data: the data is what stands out."""
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, color="#e6e6e6", linewidth=0.6)
    ax.set_axisbelow(True)
    return ax


def robust_limits(values: Sequence[np.ndarray], share: float = 0.98) -> tuple[float, float]:
    """y-limits that show the bulk of the values: the first epochs' loss can be a hundred times
    the last ones' and would flatten every later difference."""
    v = np.concatenate([np.asarray(a, dtype=float).ravel() for a in values])
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return 0.0, 1.0
    low, high = float(v.min()), float(np.quantile(v, share))
    margin = 0.05 * (high - low) or 0.05 * abs(high) or 0.5
    return low - margin, high + margin


def show_picture(
    ax: Axes,
    picture: np.ndarray,
    tile: tuple[int, int],
    rows: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    pad: int = 2,
) -> None:
    """Draw a uint8 grid from :func:`vaekit.data.writers.image_grid`, with a label at the
    centre of each row and column of tiles (``tile`` is one image's (H, W))."""
    gray = picture.ndim == 2
    ax.imshow(picture, cmap="gray" if gray else None, vmin=0, vmax=255, interpolation="nearest")
    h, w = tile
    ax.set_yticks([pad + r * (h + pad) + (h - 1) / 2 for r in range(len(rows or []))])
    ax.set_yticklabels(rows or [], fontsize="small")
    ax.set_xticks([pad + c * (w + pad) + (w - 1) / 2 for c in range(len(columns or []))])
    ax.set_xticklabels(columns or [], fontsize="small")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


def picture_size(
    picture: np.ndarray, tile: tuple[int, int], scale: float = 0.035, labels: float = 1.2
) -> tuple[float, float]:
    """Inches for a picture of tiles: about ``scale`` inch a pixel (a 28x28 digit is 1 inch)
    but at least half an inch a tile (an 8x8 digit), within a laptop-friendly width of 3..11
    inches, plus room for row labels at the side and a title above."""
    h, w = picture.shape[:2]
    scale = max(scale, 0.5 / max(tile))
    width = float(np.clip(w * scale + labels, 3.0, 11.0))
    scale = (width - labels) / w  # what is left for the picture when the width was clipped
    return width, float(np.clip(h * scale + 0.7, 1.2, 11.0))
