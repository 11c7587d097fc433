"""How training went: the loss and its parts per epoch, and how much each latent feature is used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from torch.distributions import Normal

from vaekit.plot import _style
from vaekit.train import ACTIVE_THRESHOLD, usage_sums

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from vaekit.vae import VAE

CURVES = [("loss", "Loss (nats)"), ("reconstruction", "Reconstruction (nats)")]


def _history(model_or_history: Any, best_epoch: int | None) -> tuple[pd.DataFrame, int | None]:
    if isinstance(model_or_history, pd.DataFrame):
        return model_or_history, best_epoch
    if not hasattr(model_or_history, "history_"):
        raise TypeError(
            "expected a fitted VAE or its history_ DataFrame; "
            f"got {type(model_or_history).__name__}"
        )
    if best_epoch is None:
        best_epoch = getattr(model_or_history, "best_epoch_", None)
    return model_or_history.history_, best_epoch


def _split_lines(ax: Axes, history: pd.DataFrame, name: str) -> list[np.ndarray]:
    """Train and validation curves of one quantity; returns what was drawn."""
    drawn = []
    splits = (("train", _style.TRAIN, "train"), ("val", _style.VALIDATION, "validation"))
    for split, color, label in splits:
        column = f"{split}_{name}"
        if column in history:
            ax.plot(history.index, history[column], color=color, linewidth=1.4, label=label)
            drawn.append(history[column].to_numpy())
    return drawn


def _mark_best(ax: Axes, best_epoch: int | None) -> None:
    if best_epoch is not None and best_epoch >= 0:
        ax.axvline(best_epoch, color=_style.MUTED, linestyle="--", linewidth=1, label="best epoch")


def _kl_panel(ax: Axes, history: pd.DataFrame, best_epoch: int | None) -> None:
    drawn = _split_lines(ax, history, "kl")
    _mark_best(ax, best_epoch)
    ax.set_ylim(*_style.robust_limits(drawn))
    ax.set_title("KL(q(z|x) || p(z)) (nats)")
    if "kl_weight" in history:
        weight = ax.twinx()
        weight.plot(
            history.index,
            history["kl_weight"],
            color=_style.MUTED,
            linestyle=":",
            label="KL weight",
        )
        weight.set_ylabel("KL weight", color=_style.MUTED)
        weight.set_ylim(0, max(1.0, float(history["kl_weight"].max())) * 1.05)
        weight.spines[["top"]].set_visible(False)


def training_curves(model_or_history: Any, best_epoch: int | None = None) -> Figure:
    """Loss, reconstruction and KL per epoch, train against validation, with the KL weight of
    the warm-up and (when it changed) the learning rate.

    Parameters
    ----------
    model_or_history : VAE or DataFrame
        A fitted model, or its ``history_`` (columns ``train_loss``, ``val_loss``...).
    best_epoch : int, optional
        Marked with a dashed line; by default the model's ``best_epoch_``.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per quantity: loss, reconstruction, KL (with the KL weight on a second axis)
        and, when the learning rate changed during training, the learning rate.

    Examples
    --------
    >>> fig = training_curves(model)  # doctest: +SKIP
    >>> save_figure(fig, "training.png")  # doctest: +SKIP
    """
    history, best_epoch = _history(model_or_history, best_epoch)
    lr_changed = "lr" in history and history["lr"].nunique() > 1
    axes = _style.panels(3 + lr_changed, height=2.9, width=3.4)
    for ax, (name, title) in zip(axes, CURVES, strict=False):
        drawn = _split_lines(ax, history, name)
        _mark_best(ax, best_epoch)
        ax.set_ylim(*_style.robust_limits(drawn))
        ax.set_title(title)
    _kl_panel(axes[2], history, best_epoch)
    if lr_changed:
        axes[3].plot(history.index, history["lr"], color=_style.TRAIN)
        axes[3].set_yscale("log")
        axes[3].set_title("Learning rate")
    for ax in axes:
        _style.tidy(ax).set_xlabel("epoch")
    axes[0].legend(fontsize="small", frameon=False)
    return axes[0].figure


# ----------------------------------------------------------------------------- latent usage
def _usage_on(model: VAE, X: Any, y: Any, layer: str | None) -> tuple[np.ndarray, np.ndarray, int]:
    """(KL per feature, posterior-mean variance per feature, samples) on X, by the rule that
    training uses."""
    mean, logvar = model.encode(X, y, layer=layer)
    q = Normal(torch.from_numpy(mean).double(), torch.from_numpy(np.exp(0.5 * logvar)).double())
    kl, first, second = (usage_sums(q) / len(mean)).numpy()
    return kl, np.clip(second - first**2, 0, None), len(mean)


def _history_kl(history: pd.DataFrame, n_latent: int) -> np.ndarray:
    """(n_latent, n_epochs) KL of each latent feature per epoch, from ``kl_z0``..."""
    columns = [f"kl_z{j}" for j in range(n_latent)]
    if not set(columns) <= set(history.columns):
        return np.empty((n_latent, 0))
    return history[columns].to_numpy(dtype=float).T


def kl_per_feature(model: VAE, X: Any = None, y: Any = None, *, layer: str | None = None) -> Figure:
    """How much each latent feature is used: its mean KL(q(z_j|x) || N(0, 1)), active ones
    (Burda et al. 2016: the posterior mean varies over x by more than 0.01) coloured; and its
    KL per epoch of training.

    Parameters
    ----------
    model : VAE
    X : array-like or AnnData, optional
        Data to measure the KL and activity on; by default the model's history at its best
        epoch, which records the KL per feature and the number of active units but not which
        ones are active.
    y : optional
        Conditions of X, for a conditional model.
    layer : str, optional
        The AnnData layer to encode.

    Returns
    -------
    matplotlib.figure.Figure
        Left, one bar per latent feature, most used first; right, a heatmap of the KL of each
        feature (rows, same order) over the epochs (columns).

    Examples
    --------
    >>> fig = kl_per_feature(model, X_test)  # doctest: +SKIP
    """
    n_latent = model.module_.config.n_latent
    per_epoch = _history_kl(model.history_, n_latent)
    if X is not None:
        kl, variance, n = _usage_on(model, X, y, layer)
        active = variance > ACTIVE_THRESHOLD
        where = f"on {n:,} samples"
    elif per_epoch.shape[1]:
        kl, active = per_epoch[:, model.best_epoch_], None
        where = f"at best epoch {model.best_epoch_}"
    else:
        raise ValueError("the model's history has no KL per latent feature; pass X to measure it")
    order = np.argsort(-kl, kind="stable")
    axes = _style.panels(2, height=3.2, width=4.2 if n_latent <= 30 else 5.4)
    _usage_bars(axes[0], kl[order], None if active is None else active[order], order)
    n_active = int(active.sum()) if active is not None else _recorded_active(model)
    axes[0].set_title(f"KL per latent feature {where}\n{n_active} of {n_latent} active")
    _usage_heatmap(axes[1], per_epoch[order], order)
    return axes[0].figure


def _recorded_active(model: VAE) -> int | str:
    history = model.history_
    return (
        int(history["active_units"].iloc[model.best_epoch_]) if "active_units" in history else "?"
    )


def _feature_ticks(ax: Axes, order: np.ndarray, axis: str) -> None:
    """Label at most ~25 latent features, so that 100 of them stay readable."""
    step = max(1, int(np.ceil(len(order) / 25)))
    ticks = np.arange(0, len(order), step)
    labels = [f"z{order[i]}" for i in ticks]
    if axis == "x":
        ax.set_xticks(ticks, labels, rotation=90, fontsize="x-small")
    else:
        ax.set_yticks(ticks, labels, fontsize="x-small")


def _usage_bars(ax: Axes, kl: np.ndarray, active: np.ndarray | None, order: np.ndarray) -> None:
    colors = _style.ACTIVE if active is None else np.where(active, _style.ACTIVE, _style.INACTIVE)
    ax.bar(np.arange(len(kl)), kl, color=colors, width=0.8)
    if active is not None:
        handles = [
            Patch(color=_style.ACTIVE, label="active"),
            Patch(color=_style.INACTIVE, label="collapsed to the prior"),
        ]
        ax.legend(handles=handles, fontsize="small", frameon=False)
    _feature_ticks(ax, order, "x")
    ax.set_ylabel("KL (nats per sample)")
    _style.tidy(ax).grid(False, axis="x")


def _usage_heatmap(ax: Axes, per_epoch: np.ndarray, order: np.ndarray) -> None:
    if per_epoch.shape[1] == 0:
        ax.set_axis_off()
        ax.set_title("no KL per feature in the history")
        return
    # The first epochs' KL can be many times the rest; a robust top keeps later ones legible.
    top = float(np.quantile(per_epoch, 0.98)) or None
    image = ax.imshow(
        per_epoch, aspect="auto", cmap="viridis", interpolation="nearest", vmin=0, vmax=top
    )
    clipped = top is not None and float(per_epoch.max()) > top
    ax.figure.colorbar(image, ax=ax, label="KL (nats)", extend="max" if clipped else "neither")
    _feature_ticks(ax, order, "y")
    ax.set_xlabel("epoch")
    ax.set_title("KL per feature over training")
