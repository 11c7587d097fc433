"""Architecture surgery for query mapping (scArches, Lotfollahi et al. 2022): new categories of
a condition (new batches) get new input columns in every layer that reads the condition, and
only those columns are trained; every other weight, and so the latent space of the reference
data, stays as it was.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from vaekit.model import VAEModule


def condition_layers(module: VAEModule) -> list[nn.Linear]:
    """The linear layers whose last ``n_covariates`` inputs are the condition (the condition
    is appended to every layer's input: :func:`vaekit.nn.mlp.with_condition`)."""
    c = module.config
    if c.architecture != "mlp":
        raise ValueError(
            f"new batches can be mapped onto models of the 'mlp' architecture; this one is "
            f"{c.architecture!r}: train a model on the reference and query together instead"
        )
    layers = [block[0] for block in module.decoder.layers]
    layers.append(_linear(module.likelihood.out))
    zi = getattr(module.likelihood, "zi", None)  # ZINB's dropout layer reads the condition too
    if zi is not None:
        layers.append(zi)
    if c.encode_covariates:
        layers += [block[0] for block in module.encoder.layers]
        layers += [_linear(module.z_mean), _linear(module.z_logvar)]
    return layers


def add_condition_columns(
    module: VAEModule, old_widths: list[int], new_widths: list[int]
) -> list[torch.utils.hooks.RemovableHandle]:
    """Widen every layer that reads the condition from blocks of ``old_widths`` (one per
    condition column, in order) to ``new_widths``: the columns added at the end of each block
    start as the mean of that block's old columns (an average batch), and a gradient hook
    keeps every other weight of the layer where it is. All other parameters stop requiring
    gradients, and batch norms keep their statistics (``module.frozen_norms``). Returns the
    hooks, for :func:`release` once trained."""
    old_cols, new_mask = _layout(old_widths, new_widths)
    hooks = []
    for p in module.parameters():
        p.requires_grad_(False)
    for layer in condition_layers(module):
        n_in = layer.in_features - sum(old_widths)
        weight = _widen(layer.weight.detach(), n_in, old_widths, old_cols)
        layer.weight = nn.Parameter(weight)
        layer.in_features = weight.shape[1]
        keep = torch.cat([torch.zeros(n_in, dtype=torch.bool), new_mask]).to(weight.device)
        hooks.append(layer.weight.register_hook(lambda g, keep=keep: g * keep))
    module.config = replace(module.config, n_covariates=sum(new_widths))
    module.frozen_norms = True
    return hooks


def release(module: VAEModule, hooks: list[torch.utils.hooks.RemovableHandle]) -> None:
    """Undo the training state :func:`add_condition_columns` set (the new shapes stay)."""
    for hook in hooks:
        hook.remove()
    for p in module.parameters():
        p.requires_grad_(True)
    module.frozen_norms = False


def _layout(old_widths: list[int], new_widths: list[int]) -> tuple[list[int], torch.Tensor]:
    """For each column of the widened condition: its old column (-1 for a new one, marked
    by the owning block's index as -(block + 1)), and the mask of new columns."""
    cols, start = [], 0
    for block, (old, new) in enumerate(zip(old_widths, new_widths, strict=True)):
        if new < old:
            raise ValueError(f"a condition block cannot shrink ({old} -> {new} columns)")
        cols += list(range(start, start + old)) + [-(block + 1)] * (new - old)
        start += old
    mask = torch.tensor([c < 0 for c in cols], dtype=torch.bool)
    return cols, mask


def _widen(
    weight: torch.Tensor, n_in: int, old_widths: list[int], cols: list[int]
) -> torch.Tensor:
    """``weight`` (out, n_in + old condition) with its condition columns rearranged as
    ``cols`` says; a new column is the mean of its block's old columns."""
    cond = weight[:, n_in:]
    starts = [sum(old_widths[:b]) for b in range(len(old_widths))]
    parts = []
    for c in cols:
        if c >= 0:
            parts.append(cond[:, c])
        else:
            b = -c - 1
            parts.append(cond[:, starts[b] : starts[b] + old_widths[b]].mean(1))
    return torch.cat([weight[:, :n_in], torch.stack(parts, 1)], dim=1).contiguous()


def _linear(layer: nn.Module) -> nn.Linear:
    """The linear part of a head or output layer (Linear, or Linear -> BatchNorm)."""
    return layer if isinstance(layer, nn.Linear) else layer[0]
