"""Training objectives: what the loss does with q(z | x) besides reconstructing x.

Each objective is a row of :data:`OBJECTIVES`, named by the ``objective`` setting. For one
epoch it builds a :class:`Regulariser` (the ELBO needs none: it is the module's own loss),
which turns the reconstruction error, the posterior, its draw z and the closed-form KL of a
minibatch into the loss, and reports the terms it estimated per sample, which the loop
averages over the epoch into ``history_`` (``train_<term>``). The KL weight of the epoch
(``beta`` times the warm-up factor) multiplies each objective's whole KL part.

- ``elbo``: the beta-weighted negative ELBO (Higgins et al. 2017), the module's own loss.
- ``tcvae``: beta-TC-VAE (Chen et al. 2018): KL(q(z|x) || p(z)) in expectation split into
  the index-code mutual information, the total correlation of q(z) and the dimension-wise
  KL, each with a weight, estimated on the minibatch (:data:`TC_ESTIMATORS`).
- ``capacity``: capacity annealing (Burgess et al. 2018): gamma * |KL - C|, C rising linearly
  from 0 to ``capacity_max`` nats over ``capacity_epochs``.

FactorVAE (Kim & Mnih 2018) is not here: its discriminator is a second network with its own
optimiser and step, which the one-optimiser step (and its checkpoints and CUDA graph) do not
hold; ``tcvae`` penalises the same total correlation without one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch.distributions import Normal

from vaekit.config import TrainConfig

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class Regulariser(Protocol):
    """The loss of one epoch's minibatches, given their reconstruction error.

    Attributes
    ----------
    record : dict
        Values of the epoch's schedule for ``history_`` (the capacity C), read on the host.
    """

    record: dict[str, float]

    def __call__(
        self, reconstruction: torch.Tensor, qz: Normal, z: torch.Tensor, kl: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The scalar loss and the (B,) terms (those of its :attr:`Objective.terms`), from the
        (B,) reconstruction error, q(z | x) with batch shape (B, L), z (B, L) drawn from it
        and the (B,) closed-form KL."""
        ...


# --------------------------------------------------------------------- beta-TC-VAE
def minibatch_weighted(m: int, n: int) -> torch.Tensor:
    """(m, m) weights of q(z_i | x_j) in the estimate of q(z_i): each row of the batch stands
    for N / M rows of the data (minibatch-weighted sampling, Chen et al. 2018). Their code
    divides by N M instead of M: a constant that leaves the gradients as they are but reads
    as (L - 1) log N nats of total correlation for a factorised q(z); 1 / M keeps the terms
    in nats of the batch's aggregate posterior."""
    return torch.full((m, m), 1.0 / m, dtype=torch.float64)


def stratified(m: int, n: int) -> torch.Tensor:
    """(m, m) weights of stratified sampling: row i's own q(z_i | x_i) is the one known term of
    q(z_i) = (1 / N) sum_n q(z_i | x_n), weight 1 / N, and the M - 1 other rows stand for the
    N - 1 others, weight (N - 1) / (N (M - 1)) each: unbiased for q(z_i) (Chen et al. 2018's
    minibatch stratified sampling, written with one stratum per row)."""
    if m == 1:
        return torch.ones((1, 1), dtype=torch.float64)
    weights = torch.full((m, m), (n - 1) / (n * (m - 1)), dtype=torch.float64)
    return weights.fill_diagonal_(1.0 / n)


# name -> (batch size M, data size N) -> (M, M) weights whose rows sum to 1.
TC_ESTIMATORS: dict[str, Callable[[int, int], torch.Tensor]] = {
    "mws": minibatch_weighted,
    "mss": stratified,
}


def tc_terms(
    qz: Normal, z: torch.Tensor, n_data: int, estimator: str = "mws"
) -> dict[str, torch.Tensor]:
    """(B,) single-draw estimates of the three parts of KL(q(z | x) || p(z)) (Chen et al.
    2018): ``mutual_info`` log q(z|x) - log q(z), ``total_correlation`` log q(z) -
    sum_j log q(z_j) and ``dimension_kl`` sum_j log q(z_j) - log p(z), with q(z) and its
    marginals q(z_j) estimated on the minibatch by :data:`TC_ESTIMATORS`. They sum to
    log q(z|x) - log p(z), whose expectation over z is the KL.

    Parameters
    ----------
    qz : Normal
        q(z | x) of the batch, batch shape (B, L).
    z : Tensor
        (B, L), z_i drawn from q(z | x_i).
    n_data : int
        N, the rows of the data set the batch is drawn from (B <= N).
    estimator : str
        A key of :data:`TC_ESTIMATORS`.
    """
    mu, sigma = qz.loc, qz.scale
    log_sigma = sigma.log()
    # (B, B, L) log q(z_i,l | x_j): every row's draw under every row's posterior
    pair = -0.5 * ((z[:, None, :] - mu[None]) / sigma[None]).square() - log_sigma[None]
    pair = pair - HALF_LOG_2PI
    m = len(z)
    log_w = TC_ESTIMATORS[estimator](m, max(n_data, m)).log().to(z.device, z.dtype)
    log_qz = torch.logsumexp(pair.sum(-1) + log_w, dim=1)  # (B,)
    log_marginals = torch.logsumexp(pair + log_w[..., None], dim=1).sum(-1)  # (B,)
    log_qzx = (-0.5 * ((z - mu) / sigma).square() - log_sigma - HALF_LOG_2PI).sum(-1)
    log_pz = (-0.5 * z.square() - HALF_LOG_2PI).sum(-1)
    return {
        "mutual_info": log_qzx - log_qz,
        "total_correlation": log_qz - log_marginals,
        "dimension_kl": log_marginals - log_pz,
    }


@dataclass(frozen=True)
class TotalCorrelation:
    """reconstruction + weight * (a * MI + b * TC + g * dimension-wise KL) (beta-TC-VAE)."""

    weight: float
    mi_weight: float
    tc_weight: float
    dimension_kl_weight: float
    n_data: int
    estimator: str = "mws"
    record: dict[str, float] = field(default_factory=dict)

    def __call__(self, reconstruction, qz, z, kl):
        terms = tc_terms(qz, z, self.n_data, self.estimator)
        penalty = (
            self.mi_weight * terms["mutual_info"]
            + self.tc_weight * terms["total_correlation"]
            + self.dimension_kl_weight * terms["dimension_kl"]
        )
        return (reconstruction + self.weight * penalty).mean(), terms


# --------------------------------------------------------------------- capacity
def capacity(config: TrainConfig, epoch: int) -> float:
    """C of epoch ``epoch`` (0-based), in nats: ``capacity_max`` reached linearly over
    ``capacity_epochs`` epochs (by default in the last epoch), as Burgess et al. (2018)."""
    span = config.capacity_epochs or max(1, config.epochs - 1)
    return float(config.capacity_max or 0.0) * min(1.0, epoch / span)


@dataclass(frozen=True)
class Capacity:
    """mean reconstruction + weight * |mean KL - C| (Burgess et al. 2018)."""

    weight: float
    capacity: float
    record: dict[str, float] = field(default_factory=dict)

    def __call__(self, reconstruction, qz, z, kl):
        return reconstruction.mean() + self.weight * (kl.mean() - self.capacity).abs(), {}


# --------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Objective:
    """One choice of the ``objective`` setting.

    Attributes
    ----------
    build : callable
        ``build(config, kl_weight, epoch, n_data)`` -> the epoch's :class:`Regulariser`, or
        None for the module's own loss (the ELBO).
    terms : tuple of str
        The (B,) terms its regulariser reports, in the order the loop sums them
        (``history_`` has ``train_<name>``).
    settings : tuple of str
        The settings it reads besides ``beta`` and ``kl_warmup`` (other objectives must
        leave them at their defaults).
    required : tuple of str
        Those of ``settings`` that must be given (their default is None).
    importance_weighted : bool
        Whether it can train on the importance-weighted bound (``iw_samples`` > 1).
    """

    build: Callable[[TrainConfig, float, int, int], Regulariser | None]
    terms: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    importance_weighted: bool = False


def _elbo(config: TrainConfig, weight: float, epoch: int, n_data: int) -> None:
    return None  # the module's own loss: reconstruction + weight * KL


def _tcvae(config: TrainConfig, weight: float, epoch: int, n_data: int) -> TotalCorrelation:
    c = config
    return TotalCorrelation(
        weight, c.mi_weight, c.tc_weight, c.dimension_kl_weight, n_data, c.tc_estimator
    )


def _capacity(config: TrainConfig, weight: float, epoch: int, n_data: int) -> Capacity:
    target = capacity(config, epoch)
    return Capacity(weight * config.capacity_weight, target, record={"capacity": target})


OBJECTIVES: dict[str, Objective] = {
    "elbo": Objective(_elbo, importance_weighted=True),
    "tcvae": Objective(
        _tcvae,
        ("mutual_info", "total_correlation", "dimension_kl"),
        ("mi_weight", "tc_weight", "dimension_kl_weight", "tc_estimator"),
    ),
    "capacity": Objective(
        _capacity,
        settings=("capacity_max", "capacity_epochs", "capacity_weight"),
        required=("capacity_max",),
    ),
}


def regulariser(
    config: TrainConfig, kl_weight: float, epoch: int, n_data: int
) -> Regulariser | None:
    """The :class:`Regulariser` of ``config.objective`` for epoch ``epoch``, on a data set of
    ``n_data`` rows, with the epoch's KL weight (None: the ELBO, the module's own loss)."""
    return OBJECTIVES[config.objective].build(config, kl_weight, epoch, n_data)
