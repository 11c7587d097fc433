"""The VAE as a pure torch module: encode -> posterior, decode -> likelihood, loss -> LossOutput.

No data handling, no printing: the module can be lifted into another program unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Distribution, Normal, kl_divergence

from vaekit.config import ModelConfig
from vaekit.likelihoods import Likelihood, get_likelihood
from vaekit.nn import get_architecture
from vaekit.nn.mlp import with_condition


@dataclass
class LossOutput:
    """The parts of the (beta-weighted) negative ELBO of one minibatch.

    Attributes
    ----------
    loss : Tensor
        Scalar that is optimised: mean over the batch of reconstruction + kl_weight * kl, or
        the negative importance-weighted bound (see :meth:`VAEModule.loss`).
    reconstruction : Tensor
        (B,) -log p(x | z), one z per sample, in nats.
    kl : Tensor
        (B,) KL(q(z | x) || p(z)), in nats.
    kl_weight : float
        The weight the KL term had in ``loss`` (beta times the warm-up factor).
    posterior : Normal or None
        q(z | x) of the batch, for diagnostics that need more than its KL.
    """

    loss: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor
    kl_weight: float
    posterior: Normal | None = None

    @property
    def elbo(self) -> torch.Tensor:
        """(B,) the unweighted evidence lower bound, in nats."""
        return -(self.reconstruction + self.kl)


@dataclass
class ImportanceDraws:
    """Draws z_k from a proposal q for each of B samples, decoded (see
    :meth:`VAEModule.importance_draws`); log w_k = log_px - log_ratio.

    Attributes
    ----------
    z : Tensor
        (k, B, n_latent).
    log_px : Tensor
        (k, B) log p(x | z_k) over the observed entries of x.
    log_ratio : Tensor
        (k, B) log q(z_k) - log p(z_k).
    px : Distribution
        p(x | z_k) with batch shape (k * B, n_input), draw-major.
    """

    z: torch.Tensor
    log_px: torch.Tensor
    log_ratio: torch.Tensor
    px: Distribution


class VAEModule(nn.Module):
    """Encoder, diagonal Gaussian posterior, prior N(0, I), decoder and likelihood.

    The encoder and decoder bodies come from the architecture named in ``config``
    (:data:`vaekit.nn.ARCHITECTURES`); the condition is appended to what each body returns,
    before the posterior heads and the likelihood's output layer.

    Parameters
    ----------
    config : ModelConfig

    Examples
    --------
    >>> m = VAEModule(ModelConfig(n_input=64, n_latent=2, likelihood="bernoulli"))
    >>> out = m.loss(torch.rand(8, 64))
    >>> out.reconstruction.shape
    torch.Size([8])
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        architecture = get_architecture(c.architecture)
        architecture.check(c)
        # Built in this order so that a seed gives the same initial weights as before
        # architectures were pluggable.
        self.encoder = architecture.encoder(c.encoder_config)  # x, or x and its mask
        self.z_mean = _head(self.encoder.n_out + c.n_covariates, c.n_latent, c.posterior_batch_norm)
        self.z_logvar = _head(
            self.encoder.n_out + c.n_covariates, c.n_latent, c.posterior_batch_norm
        )
        self.decoder = architecture.decoder(c)
        output = None if architecture.output is None else architecture.output(c)
        self.likelihood = _likelihood(c, self.decoder.n_out + c.n_covariates, output)
        # Log library sizes of the training data: where new samples get their library size.
        self.register_buffer("library_log_mean", torch.zeros(()))
        self.register_buffer("library_log_std", torch.ones(()))

    def encode(
        self, x: torch.Tensor, c: torch.Tensor | None = None, visible: torch.Tensor | None = None
    ) -> Normal:
        """Posterior q(z | x, c), a Normal with batch shape (B, n_latent).

        With ``missing="mask"`` the encoder reads the entries that are ``visible`` (a (B, D)
        bool mask; by default those of x that are not NaN) and the mask itself.
        """
        if visible is None:
            visible = self.observed(x)
        h = with_condition(self.encoder(self._encoder_input(x, visible), c), c)
        return Normal(self.z_mean(h), (0.5 * self.z_logvar(h)).exp(), validate_args=False)

    def observed(self, x: torch.Tensor) -> torch.Tensor | None:
        """(B, D) bool mask of the entries of x that are not NaN, with ``missing="mask"``;
        None otherwise (every entry counts)."""
        return ~x.isnan() if self.config.missing == "mask" else None

    def _encoder_input(self, x: torch.Tensor, visible: torch.Tensor | None) -> torch.Tensor:
        """x as the likelihood shows it to the encoder; with a mask, hidden entries set to 0
        and the 0/1 mask appended (B, 2 * D), so that a 0 reads as unknown, not as a value
        (Nazabal et al. 2020; Mattei & Frellsen 2019)."""
        if visible is None:
            return self.likelihood.encoder_input(x)
        values = self.likelihood.encoder_input(_fill(x, visible))
        return torch.cat([_fill(values, visible), visible.to(values.dtype)], dim=-1)

    def log_px(
        self, px: Distribution, x: torch.Tensor, observed: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B,) log p(x | z) summed over the ``observed`` entries of x; by default all of them,
        or with ``missing="mask"`` those that are not NaN."""
        observed = self.observed(x) if observed is None else observed
        if observed is None:
            return px.log_prob(x).sum(-1)
        return observed_sum(px.log_prob(_fill(x, observed)), observed)

    def _hide(self, observed: torch.Tensor | None) -> torch.Tensor | None:
        """The entries the encoder sees in a training step: with ``mask_rate``, each sample
        hides a share u ~ U(0, mask_rate) of its observed entries, so that the encoder learns
        to read partial inputs even from complete data (Ma et al. 2019)."""
        if observed is None or not self.training or self.config.mask_rate == 0:
            return observed
        share = torch.rand((len(observed), 1), device=observed.device) * self.config.mask_rate
        return observed & (torch.rand(observed.shape, device=observed.device) >= share)

    def decode(
        self, z: torch.Tensor, c: torch.Tensor | None = None, library: torch.Tensor | None = None
    ) -> Distribution:
        """Likelihood p(x | z, c) with batch shape (B, n_input); ``library`` is (B, 1)."""
        h = with_condition(self.decoder(z, c), c)
        return self.likelihood(h, library)

    def library(self, x: torch.Tensor, observed: torch.Tensor | None = None) -> torch.Tensor | None:
        """(B, 1) observed library size of count data, None for other likelihoods. With
        missing entries (``observed``, by default as :meth:`log_px`), the total of the
        observed ones scaled up by the share observed: the library size if the missing entries
        are like the observed ones on average."""
        if not self.likelihood.uses_library:
            return None
        observed = self.observed(x) if observed is None else observed
        if observed is None:
            return x.sum(-1, keepdim=True)
        share = observed.sum(-1, keepdim=True).clamp(min=1) / x.shape[-1]
        return _fill(x, observed).sum(-1, keepdim=True) / share

    def sample_library(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, 1) library sizes drawn from the log-normal fitted to the training data."""
        eps = torch.randn((n, 1), generator=generator, device=self.library_log_mean.device)
        return (self.library_log_mean + self.library_log_std * eps).exp()

    @staticmethod
    def reparameterize(qz: Normal, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mu + sigma * eps (Kingma & Welling 2014), with an explicit generator if given."""
        eps = torch.randn(qz.loc.shape, generator=generator, device=qz.loc.device)
        return qz.loc + qz.scale * eps

    def forward(
        self,
        x: torch.Tensor,
        c: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Normal, torch.Tensor, Distribution]:
        qz = self.encode(x, c)
        z = self.reparameterize(qz, generator)
        return qz, z, self.decode(z, c, self.library(x))

    def loss(
        self,
        x: torch.Tensor,
        c: torch.Tensor | None = None,
        kl_weight: float = 1.0,
        generator: torch.Generator | None = None,
        iw_samples: int = 1,
    ) -> LossOutput:
        """The negative ELBO, reconstruction + kl_weight * KL, averaged over the batch; with
        ``iw_samples`` = k > 1, the negative importance-weighted bound of Burda et al. (2016)
        instead (``reconstruction`` is then the mean over the k draws)."""
        if iw_samples > 1:
            return self._iw_loss(x, c, kl_weight, generator, iw_samples)
        observed = self.observed(x)  # once per step: the mask is used three times
        qz = self.encode(x, c, self._hide(observed))
        z = self.reparameterize(qz, generator)
        px = self.decode(z, c, self.library(x, observed))
        reconstruction = -self.log_px(px, x, observed)
        kl = _prior_kl(qz)
        loss = (reconstruction + kl_weight * kl).mean()
        return LossOutput(loss, reconstruction, kl, kl_weight, qz)

    def _iw_loss(
        self,
        x: torch.Tensor,
        c: torch.Tensor | None,
        kl_weight: float,
        generator: torch.Generator | None,
        k: int,
    ) -> LossOutput:
        """-log mean_k w_k with log w = log p(x|z) + kl_weight * (log p(z) - log q(z|x)): the
        tighter bound trains a decoder with a higher log p(x) and an encoder whose posterior
        need not cover only one mode (Burda et al. 2016). kl_weight < 1 tempers the bound
        during a warm-up, as it does the ELBO."""
        observed = self.observed(x)
        qz = self.encode(x, c, self._hide(observed))
        draws = self.importance_draws(x, c, k, qz, generator, observed)
        bound = torch.logsumexp(draws.log_px - kl_weight * draws.log_ratio, dim=0) - math.log(k)
        return LossOutput(-bound.mean(), -draws.log_px.mean(0), _prior_kl(qz), kl_weight, qz)

    def importance_draws(
        self,
        x: torch.Tensor,
        c: torch.Tensor | None,
        k: int,
        qz: Normal | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        observed: torch.Tensor | None = None,
    ) -> ImportanceDraws:
        """``k`` draws z_k from the proposal ``qz`` (by default q(z | x)), decoded, with the
        parts of their log importance weight log p(x|z_k) + log p(z_k) - log q(z_k). Only the
        ``observed`` entries of x are scored (as :meth:`log_px`), so any proposal gives a
        consistent estimate of p(x_obs) (Burda et al. 2016; Mattei & Frellsen 2019). A list of
        generators, one per sample, makes each sample's draws its own."""
        observed = self.observed(x) if observed is None else observed
        qz = self.encode(x, c, observed) if qz is None else qz
        n = len(x)
        z = qz.loc + qz.scale * _noise((k, *qz.loc.shape), generator, x.device)  # (k, B, L)
        library = _repeat(self.library(x, observed), k)
        px = self.decode(z.reshape(k * n, -1), _repeat(c, k), library)
        log_px = self.log_px(px, x.repeat(k, 1), _repeat(observed, k)).view(k, n)
        log_ratio = (qz.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1)  # (k, B)
        return ImportanceDraws(z, log_px, log_ratio, px)

    def refine(
        self,
        x: torch.Tensor,
        qz: Normal,
        c: torch.Tensor | None = None,
        steps: int = 100,
        lr: float = 0.05,
        n_draws: int = 8,
        observed: torch.Tensor | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
    ) -> Normal:
        """q(z) of each sample of x fitted to that sample alone by ``steps`` of Adam on its ELBO,
        starting from ``qz``: semi-amortised inference (Kim et al. 2018).

        The encoder's q(z | x) is fitted to the data on average; for a sample with many
        entries missing it can be far from the true posterior (the amortisation gap), which
        leaves importance sampling with a few useful draws out of thousands. Only the
        ``observed`` entries (by default those that are not NaN) are scored; the KL is in
        closed form; the module's own weights are neither changed nor given gradients.
        """
        if steps < 0:
            raise ValueError(f"steps must be >= 0; got {steps}")
        if steps == 0:
            return Normal(qz.loc.detach(), qz.scale.detach(), validate_args=False)
        observed = ~x.isnan() if observed is None else observed
        loc = qz.loc.detach().clone().requires_grad_(True)
        log_scale = qz.scale.detach().log().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([loc, log_scale], lr=lr)
        # A rate falling to 0 lets the noisy steps settle on the optimum instead of about it.
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1 - t / steps)
        with torch.enable_grad():
            for _ in range(steps):
                q = Normal(loc, log_scale.exp(), validate_args=False)
                draws = self.importance_draws(x, c, n_draws, q, generator, observed)
                loss = (_prior_kl(q) - draws.log_px.mean(0)).sum()  # samples are independent
                loc.grad, log_scale.grad = torch.autograd.grad(loss, [loc, log_scale])
                optimizer.step()
                schedule.step()
        return Normal(loc.detach(), log_scale.detach().exp(), validate_args=False)

    @torch.no_grad()
    def log_likelihood(
        self,
        x: torch.Tensor,
        c: torch.Tensor | None = None,
        n_samples: int = 1000,
        max_rows: int = 1024,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(B,) importance-sampled log p(x) with q(z | x) as proposal (Burda et al. 2016).

        log p(x) ~ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K. Samples and
        draws are decoded in blocks of about ``max_rows`` rows: on a CPU, ~1000 rows keep the
        decoder's activations in cache and run several times faster than one huge batch.
        """
        blocks = [
            self._log_likelihood_block(
                x[i : i + max_rows], _slice(c, i, max_rows), n_samples, max_rows, generator
            )
            for i in range(0, len(x), max_rows)
        ]
        return torch.cat(blocks)

    def _log_likelihood_block(
        self,
        x: torch.Tensor,
        c: torch.Tensor | None,
        n_samples: int,
        max_rows: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        qz = self.encode(x, c)
        chunk = max(1, min(n_samples, max_rows // len(x)))
        parts = []
        for start in range(0, n_samples, chunk):
            k = min(chunk, n_samples - start)
            draws = self.importance_draws(x, c, k, qz, generator)
            parts.append(torch.logsumexp(draws.log_px - draws.log_ratio, dim=0))  # (B,)
        return torch.logsumexp(torch.stack(parts), dim=0) - math.log(n_samples)

    def loadings(
        self,
        z: torch.Tensor | None = None,
        c: torch.Tensor | None = None,
        library: torch.Tensor | None = None,
        max_rows: int = 1024,
    ) -> tuple[torch.Tensor, str]:
        """(n_latent, n_input) effect of each latent feature on each feature of x, and the method.

        Without hidden decoder layers z acts on x through one linear map: its weights, with a
        batch norm folded in, are exact (``"linear"`` for the linear decoder, ``"weights"`` for
        Tybalt's single layer; in the likelihood's parameter space, e.g. logits or
        log-proportions). A deeper decoder's loadings are the Jacobian of the decoder's mean
        with respect to z averaged over the rows of ``z`` (``"jacobian"``, in units of x per
        unit of z), with their conditions ``c`` and library sizes.
        """
        if self.one_layer_decoder:
            method = "linear" if self.config.decoder == "linear" else "weights"
            return self.latent_weights().detach().T, method
        if z is None:
            raise ValueError("the loadings of a deep decoder are averaged over latent points z")
        total = torch.zeros(self.config.n_latent, self.config.n_input, device=z.device)
        for i in range(0, len(z), max_rows):
            total += self._jacobian_sum(
                z[i : i + max_rows], _slice(c, i, max_rows), _slice(library, i, max_rows)
            )
        return total / len(z), "jacobian"

    @property
    def one_layer_decoder(self) -> bool:
        """Whether z reaches the likelihood's parameters through one linear layer (the
        decoder body has no layers of its own), whose weights are then the loadings."""
        return len(self.decoder.layers) == 0

    def latent_weights(self) -> torch.Tensor:
        """(n_out, n_latent) weights of the decoder's first layer on z (after folding a batch
        norm): the loadings of a one-layer decoder, and what ``loadings_l1`` makes sparse."""
        first = self.likelihood.out if self.one_layer_decoder else self.decoder.layers[0][0]
        return _folded_weights(first)[:, : self.config.n_latent]

    def _jacobian_sum(
        self, z: torch.Tensor, c: torch.Tensor | None, library: torch.Tensor | None
    ) -> torch.Tensor:
        """(n_latent, n_input) d mean(x) / d z summed over rows, one forward-mode pass per
        latent feature (cheaper than the full (B, n_input, n_latent) Jacobian)."""

        def mean(z: torch.Tensor) -> torch.Tensor:
            return self.decode(z, c, library).mean

        rows = []
        for j in range(z.shape[1]):
            tangent = torch.zeros_like(z)
            tangent[:, j] = 1.0
            rows.append(torch.func.jvp(mean, (z,), (tangent,))[1].sum(0))
        return torch.stack(rows)


def _folded_weights(out: nn.Module) -> torch.Tensor:
    """(n_out, n_in) weights of a Linear, or of Linear -> BatchNorm1d with the batch norm's
    scale folded in (its shift only moves the intercept)."""
    if isinstance(out, nn.Linear):
        return out.weight
    linear, norm = out
    scale = norm.weight / (norm.running_var + norm.eps).sqrt()
    return linear.weight * scale[:, None]


def _likelihood(config: ModelConfig, n_hidden: int, output: nn.Module | None) -> Likelihood:
    """The likelihood, with its own dense output layer or the architecture's ``output`` (for
    images a dense layer would need (channels * H * W) x (C * H * W) weights; the
    architecture's ``check`` admits only likelihoods whose parameters all come from it)."""
    cls = get_likelihood(config.likelihood)
    return cls(n_hidden, config.n_input, config.output_batch_norm, out=output)


def _head(n_in: int, n_out: int, batch_norm: bool) -> nn.Module:
    linear = nn.Linear(n_in, n_out)
    return nn.Sequential(linear, nn.BatchNorm1d(n_out)) if batch_norm else linear


def _noise(
    shape: tuple[int, ...], generator: torch.Generator | list[torch.Generator] | None, device
) -> torch.Tensor:
    """(k, B, L) standard normal noise; from a list of B generators, row b's noise is drawn
    by generator b alone, so it does not depend on which rows are drawn with it."""
    if isinstance(generator, list):
        rows = [torch.randn((shape[0], shape[2]), generator=g) for g in generator]
        return torch.stack(rows, dim=1).to(device)
    return torch.randn(shape, generator=generator, device=device)


def _prior_kl(qz: Normal) -> torch.Tensor:
    """(B,) KL(q(z | x) || N(0, I)), in closed form."""
    return kl_divergence(qz, Normal(torch.zeros_like(qz.loc), torch.ones_like(qz.scale))).sum(-1)


def observed_sum(values: torch.Tensor, observed: torch.Tensor | None) -> torch.Tensor:
    """(B,) per-entry ``values`` (B, D) summed over the ``observed`` entries (all when None);
    the others may hold NaN."""
    return values.sum(-1) if observed is None else _fill(values, observed).sum(-1)


def _fill(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """x where ``keep``, else 0 (a where, not a product: NaN * 0 is NaN, in gradients too)."""
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))


def _slice(t: torch.Tensor | None, start: int, size: int) -> torch.Tensor | None:
    return None if t is None else t[start : start + size]


def _repeat(t: torch.Tensor | None, k: int) -> torch.Tensor | None:
    return None if t is None else t.repeat(k, 1)
