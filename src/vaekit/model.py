"""The VAE as a pure torch module: encode -> posterior, decode -> likelihood, loss -> LossOutput.

No data handling, no printing: the module can be lifted into another program unchanged.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Normal

from vaekit import _memory
from vaekit.batch import Batch
from vaekit.config import ModelConfig
from vaekit.likelihoods import MIN_LOG_SCALE, Likelihood, full_precision, get_likelihood
from vaekit.nn import get_architecture
from vaekit.nn.mlp import with_condition
from vaekit.objectives import Regulariser

# Bytes of one parameter (float32), and the copies of the weights that exist at once when a
# module is built: its own, and the file's being loaded or the gradients of training.
BYTES_PER_VALUE, COPIES = 4, 2
# Hidden units of the label classifier (scANVI's default).
CLASSIFIER_HIDDEN = 128
# Values a finite parameter may still not take, by the last part of its name: exp() of a
# log-parameter overflows float32 above log(3.4e38) = 88.7 (an infinite scale generates
# inf), and a variance or standard deviation below 0 gives NaN.
EXP_MAX = 88.0
BOUNDS: dict[str, tuple[float, float, str]] = {
    "log_scale": (-math.inf, EXP_MAX, "the log of a standard deviation"),
    "log_theta": (-EXP_MAX, EXP_MAX, "the log of a dispersion"),
    "library_log_mean": (-EXP_MAX, EXP_MAX, "the mean log library size"),
    "library_log_std": (0.0, EXP_MAX, "the SD of the log library sizes"),
    "running_var": (0.0, math.inf, "a batch norm's variance"),
}


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
    classification : Tensor or None
        (B,) cross-entropy of the label classifier, 0 without a label.
    terms : dict of str to Tensor
        (B,) the terms an objective other than the ELBO estimated (the parts of the KL of
        beta-TC-VAE, see :mod:`vaekit.objectives`), by name.
    """

    loss: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor
    kl_weight: float
    posterior: Normal | None = None
    classification: torch.Tensor | None = None
    terms: dict[str, torch.Tensor] = field(default_factory=dict)

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
        check_memory(c)
        # Built in this order so that a seed gives the same initial weights as before
        # architectures were pluggable.
        self.encoder = architecture.encoder(c.encoder_config)  # x, or x and its mask
        n_head = self.encoder.n_out + c.encoder_config.n_covariates
        self.z_mean = _head(n_head, c.n_latent, c.posterior_batch_norm)
        self.z_logvar = _head(n_head, c.n_latent, c.posterior_batch_norm)
        self.decoder = architecture.decoder(c)
        output = None if architecture.output is None else architecture.output(c)
        self.likelihood = _likelihood(c, self.decoder.n_out + c.n_covariates, output)
        # Log library sizes of the training data: where new samples get their library size.
        self.register_buffer("library_log_mean", torch.zeros(()))
        self.register_buffer("library_log_std", torch.ones(()))
        if c.n_labels:  # built last: the other weights of a seed stay as they were
            self.classifier = _classifier(c.n_latent, c.n_labels)
        # Batch norms that stay in eval mode while the module trains (query mapping trains a
        # few new weights against the reference's statistics: see vaekit.surgery).
        self.frozen_norms = False

    def train(self, mode: bool = True) -> VAEModule:
        super().train(mode)
        if mode and self.frozen_norms:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def encode(
        self, x: torch.Tensor, c: torch.Tensor | None = None, observed: torch.Tensor | None = None
    ) -> Normal:
        """Posterior q(z | x, c), a Normal with batch shape (B, n_latent).

        With ``missing="mask"`` the encoder reads the ``observed`` entries (a (B, D) bool
        mask; by default those of x that are not NaN; in training, fewer: see :meth:`_hide`)
        and the mask itself.
        """
        if observed is None:
            observed = self.observed(x)
        c = c if self.config.encode_covariates else None
        h = with_condition(self.encoder(self._encoder_input(x, observed), c), c)
        # float32 whatever autocast did to the layers: the KL and z stay exact.
        mean, logvar = full_precision(self.z_mean(h)), full_precision(self.z_logvar(h))
        # A sample far outside the training data (say a gene constant in training, hence not
        # scaled down, at 1e5) can push the log-variance past float32's exp: an infinite sigma
        # made its scores NaN. No fitted posterior comes near e^10 times the prior's width.
        logvar = logvar.clamp(max=LOGVAR_MAX)
        return Normal(mean, (0.5 * logvar).exp(), validate_args=False)

    def observed(self, x: torch.Tensor) -> torch.Tensor | None:
        """(B, D) bool mask of the entries of x that are not NaN, with ``missing="mask"``;
        None otherwise (every entry counts)."""
        return ~x.isnan() if self.config.missing == "mask" else None

    def batch(
        self, x: torch.Tensor, c: torch.Tensor | None = None, observed: torch.Tensor | None = None
    ) -> Batch:
        """x with what every pass needs, computed once: the ``observed`` entries (by default as
        :meth:`observed`), the conditions ``c`` and the library sizes (:meth:`library`)."""
        observed = self.observed(x) if observed is None else observed
        return Batch(x, observed, c, self.library(x, observed))

    def _encoder_input(self, x: torch.Tensor, observed: torch.Tensor | None) -> torch.Tensor:
        """x as the likelihood shows it to the encoder; with a mask, the entries not observed
        set to 0 and the 0/1 mask appended (B, 2 * D), so that a 0 reads as unknown, not as a
        value (Nazabal et al. 2020; Mattei & Frellsen 2019)."""
        if observed is None:
            return self.likelihood.encoder_input(x)
        values = self.likelihood.encoder_input(_fill(x, observed))
        return torch.cat([_fill(values, observed), observed.to(values.dtype)], dim=-1)

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
        c = self._decoder_condition(c)
        h = with_condition(self.decoder(z, c), c)
        return self.likelihood(h, library)

    def _decoder_condition(self, c: torch.Tensor | None) -> torch.Tensor | None:
        """The condition as the decoder reads it: times ``condition_scale``. Adam moves each
        weight by about lr a step whatever its input, so a one-hot input's weights, each
        trained by one class's samples, change the output little a step next to z's 16
        inputs of size ~1: z learned the class first and the label was left unused."""
        scale = self.config.condition_scale
        return c if c is None or scale == 1 else c * scale

    def expression(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_input) the expected share of each feature in a sample's counts at z, given
        the condition c: the decoder's mean for a library size of 1, before any zero
        inflation (scVI's ``px_scale``). Count likelihoods only."""
        if not self.likelihood.uses_library:
            raise ValueError(
                f"normalised expression needs a count likelihood (poisson, nb, zinb); this "
                f"model's is {self.config.likelihood!r}"
            )
        c = self._decoder_condition(c)
        h = with_condition(self.decoder(z, c), c)
        return self.likelihood.log_mean(h, torch.ones((len(z), 1), device=z.device)).exp()

    def classify(self, qz: Normal) -> torch.Tensor:
        """(B, n_labels) label logits from the posterior mean."""
        if not self.config.n_labels:
            raise ValueError("this model has no label classifier; fit it with labels=...")
        return full_precision(self.classifier(qz.loc))

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
        labels: torch.Tensor | None = None,
        label_weight: float = 0.0,
        regulariser: Regulariser | None = None,
    ) -> LossOutput:
        """The negative ELBO, reconstruction + kl_weight * KL, averaged over the batch; with
        ``iw_samples`` = k > 1, the negative importance-weighted bound of Burda et al. (2016)
        instead (``reconstruction`` is then the mean over the k draws). With ``labels`` ((B,)
        int64 class indices, -1 for a sample without one), ``label_weight`` times the
        classifier's mean cross-entropy over the labelled samples is added (scANVI's
        classification loss, Xu et al. 2021). A ``regulariser`` (another objective: see
        :mod:`vaekit.objectives`) makes the loss from the reconstruction error and q(z | x)
        in place of the ELBO's sum; ``kl_weight`` is then only recorded."""
        batch = self.batch(x, c)  # once per step: the mask is used three times
        if iw_samples > 1:
            if regulariser is not None:
                raise ValueError(
                    f"{type(regulariser).__name__} estimates its terms from one draw of z per "
                    f"sample; it cannot train on the importance-weighted bound (iw_samples="
                    f"{iw_samples}): set iw_samples=1"
                )
            out = self._iw_loss(batch, kl_weight, generator, iw_samples)
        else:
            out = self._elbo_loss(batch, kl_weight, generator, regulariser)
        return out if labels is None else self._with_labels(out, labels, label_weight)

    def _with_labels(self, out: LossOutput, labels: torch.Tensor, weight: float) -> LossOutput:
        known = labels >= 0
        logits = self.classify(out.posterior)
        ce = F.cross_entropy(logits, labels.clamp(min=0), reduction="none") * known
        out.classification = ce
        out.loss = out.loss + weight * ce.sum() / known.sum().clamp(min=1)
        return out

    def _elbo_loss(
        self,
        batch: Batch,
        kl_weight: float,
        generator: torch.Generator | None,
        regulariser: Regulariser | None = None,
    ) -> LossOutput:
        qz = self.encode(batch.x, batch.condition, self._hide(batch.observed))
        z = self.reparameterize(qz, generator)
        px = self.decode(z, batch.condition, batch.library)
        reconstruction = -self.log_px(px, batch.x, batch.observed)
        kl = prior_kl(qz)
        if regulariser is None:
            loss = (reconstruction + kl_weight * kl).mean()
            return LossOutput(loss, reconstruction, kl, kl_weight, qz)
        loss, terms = regulariser(reconstruction, qz, z, kl)
        return LossOutput(loss, reconstruction, kl, kl_weight, qz, terms=terms)

    def _iw_loss(
        self, batch: Batch, kl_weight: float, generator: torch.Generator | None, k: int
    ) -> LossOutput:
        """-log mean_k w_k with log w = log p(x|z) + kl_weight * (log p(z) - log q(z|x)): the
        tighter bound trains a decoder with a higher log p(x) and an encoder whose posterior
        need not cover only one mode (Burda et al. 2016). kl_weight < 1 tempers the bound
        during a warm-up, as it does the ELBO."""
        qz = self.encode(batch.x, batch.condition, self._hide(batch.observed))
        draws = self.importance_draws(batch, k, qz, generator)
        bound = torch.logsumexp(draws.log_px - kl_weight * draws.log_ratio, dim=0) - math.log(k)
        return LossOutput(-bound.mean(), -draws.log_px.mean(0), prior_kl(qz), kl_weight, qz)

    def importance_draws(
        self,
        batch: Batch,
        k: int,
        qz: Normal | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        noise: torch.Tensor | None = None,
    ) -> ImportanceDraws:
        """``k`` draws z_k from the proposal ``qz`` (by default q(z | x)), decoded, with the
        parts of their log importance weight log p(x|z_k) + log p(z_k) - log q(z_k). Only the
        ``observed`` entries of the batch are scored (as :meth:`log_px`), so any proposal gives
        a consistent estimate of p(x_obs) (Burda et al. 2016; Mattei & Frellsen 2019). A list of
        generators, one per sample, makes each sample's draws its own; ``noise``, (k, B, L)
        standard normal values, is used instead of drawing them."""
        qz = self.encode(batch.x, batch.condition, batch.observed) if qz is None else qz
        n = len(batch)
        if noise is None:
            noise = _noise((k, *qz.loc.shape), generator, batch.x.device)
        z = qz.loc + qz.scale * noise  # (k, B, L)
        copies = batch.repeat(k)
        px = self.decode(z.reshape(k * n, -1), copies.condition, copies.library)
        log_px = self.log_px(px, copies.x, copies.observed).view(k, n)
        prior = Normal(0.0, 1.0, validate_args=False)  # no check on the host per step
        log_ratio = (qz.log_prob(z) - prior.log_prob(z)).sum(-1)  # (k, B)
        return ImportanceDraws(z, log_px, log_ratio, px)

    @property
    def one_layer_decoder(self) -> bool:
        """Whether z reaches the likelihood's parameters through one linear layer (the
        decoder body has no layers of its own), whose weights are then the loadings."""
        return len(self.decoder.layers) == 0

    @torch.no_grad()
    def init_ppca(self, X: torch.Tensor) -> None:
        """Set the weights to probabilistic PCA's maximum-likelihood solution for the rows
        ``X`` (n, n_input) (Tipping & Bishop 1999): loadings ``W = V_k (L_k - s2 I)^1/2`` from
        the top ``n_latent`` principal axes ``V_k`` and variances ``L_k``, the noise variance
        ``s2`` the mean variance left over, and the exact posterior, diagonal because the
        loadings are orthogonal: mean ``(W'W + s2 I)^-1 W'(x - mean)``, variance
        ``s2 / (L_k)``. The ELBO then equals the log-likelihood, and this is the ELBO's
        optimum for such a model (Lucas et al. 2019): with p >> n features Adam from random
        weights drifts far from it (TCGA cohorts of 11 to 59 samples: held-out cohorts ranked
        at AUROC 0.71 to 0.91 where PCA reached 0.98 to 1).

        Raises
        ------
        ValueError
            When the module is not a linear isotropic Gaussian model (:func:`require_ppca`).
        """
        require_ppca(self.config)
        s2, loadings, mean = _ppca(X.double(), self.config.n_latent)
        precision = 1.0 / ((loadings**2).sum(0) + s2)  # diagonal of (W'W + s2 I)^-1
        encoder = precision[:, None] * loadings.T
        for layer, weight, bias in (
            (self.likelihood.out, loadings, mean),
            (self.z_mean, encoder, -(encoder @ mean)),
            (self.z_logvar, torch.zeros_like(encoder), (s2 * precision).log()),
        ):
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
        self.likelihood.log_scale.fill_(0.5 * math.log(s2))

    def latent_weights(self) -> torch.Tensor:
        """(n_out, n_latent) weights of the decoder's first layer on z (after folding a batch
        norm): the loadings of a one-layer decoder, and what ``loadings_l1`` makes sparse."""
        first = self.likelihood.out if self.one_layer_decoder else self.decoder.layers[0][0]
        return _folded_weights(first)[:, : self.config.n_latent]


def n_values(config: ModelConfig) -> int:
    """Parameters and buffers of ``VAEModule(config)``, counted from the config without
    building it: the architecture counts its bodies (:attr:`vaekit.nn.Architecture.size`),
    the likelihood, which owns its parameters, is built on the meta device (shapes only,
    nothing allocated). ``config`` must have passed the architecture's ``check``."""
    c = config
    architecture = get_architecture(c.architecture)
    body = architecture.size(c)
    n_head = body.encoder_out + c.encoder_config.n_covariates
    heads = 2 * _head_size(n_head, c.n_latent, c.posterior_batch_norm)
    n_hidden = body.decoder_out + c.n_covariates
    classifier = sum(t.numel() for t in _classifier(c.n_latent, c.n_labels, "meta").parameters())
    return (
        body.values + heads + _likelihood_size(c, n_hidden, architecture.output is None) + 2
        + (classifier if c.n_labels else 0)
    )


def check_memory(config: ModelConfig, copies: int = COPIES) -> None:
    """Raise ValueError, before anything is allocated, when ``copies`` of the weights of
    ``VAEModule(config)`` would not fit in :func:`vaekit._memory.available_memory`; first
    the architecture's own ``check`` (its size needs a config it can build)."""
    get_architecture(config.architecture).check(config)
    n = n_values(config)
    need = copies * BYTES_PER_VALUE * n
    free = _memory.available_memory()
    if free is None or need <= free:
        return
    raise ValueError(
        f"a model of {n:,} parameters (n_input={config.n_input}, hidden={_brief(config.hidden)}, "
        f"n_latent={config.n_latent}) needs {need:,} bytes ({need / 2**30:,.1f} GiB) of "
        f"memory; {free:,} bytes ({free / 2**30:,.1f} GiB) are available. Use smaller hidden "
        "layers or fewer latent features, or select fewer features"
    )


def check_values(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise ValueError when a parameter of ``state`` (a module's ``state_dict``) is outside
    what it may hold (:data:`BOUNDS`): finite values that still make the model compute
    infinities or NaN. Call it on finite weights (:func:`vaekit.persist.check_finite`)."""
    for name, value in state.items():
        bound = BOUNDS.get(name.rsplit(".", 1)[-1])
        if bound is None or value.numel() == 0:
            continue
        low, high, what = bound
        worst = value.min() if bool((value < low).any()) else value.max()
        if not low <= float(worst) <= high:
            raise ValueError(
                f"{source}: {name} holds {float(worst):g}, {what}, outside [{low:g}, {high:g}]: "
                "the model would compute infinite or NaN values; the training diverged or the "
                "file was altered: retrain with a lower lr, or save the model again"
            )


def _head_size(n_in: int, n_out: int, batch_norm: bool) -> int:
    return (n_in + 1) * n_out + (4 * n_out + 1 if batch_norm else 0)


def _likelihood_size(config: ModelConfig, n_hidden: int, dense: bool) -> int:
    """Values of the likelihood: its dense output layer (when the architecture gives none)
    counted here, its own parameters (a scale, a dispersion, ZINB's dropout layer) on meta."""
    c = config
    out = (n_hidden + 1) * c.n_input + (4 * c.n_input + 1 if c.output_batch_norm else 0)
    try:
        with torch.device("meta"):
            own = get_likelihood(c.likelihood)(n_hidden, c.n_input, out=nn.Identity())
    except (RuntimeError, OverflowError):  # sizes beyond int64: the output layer is refused
        return out * 2
    return (out if dense else 0) + sum(t.numel() for t in (*own.parameters(), *own.buffers()))


def _brief(sizes: tuple[int, ...]) -> str:
    text = str(tuple(sizes))
    return text if len(text) <= 40 else text[:37] + "..."


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


def _classifier(n_latent: int, n_labels: int, device: str | None = None) -> nn.Module:
    """scANVI's classifier: one hidden layer of CLASSIFIER_HIDDEN units on z."""
    with torch.device(device) if device else contextlib.nullcontext():
        return nn.Sequential(
            nn.Linear(n_latent, CLASSIFIER_HIDDEN),
            nn.ReLU(),
            nn.Linear(CLASSIFIER_HIDDEN, max(n_labels, 1)),
        )


def _head(n_in: int, n_out: int, batch_norm: bool) -> nn.Module:
    linear = nn.Linear(n_in, n_out)
    return nn.Sequential(linear, nn.BatchNorm1d(n_out)) if batch_norm else linear


def ppca_unmet(config: ModelConfig) -> str:
    """What a model of ``config`` lacks for :meth:`VAEModule.init_ppca` ("" when nothing):
    linear maps on both sides (no hidden layers, batch norm or conditions, no missing-value
    mask) and the isotropic Gaussian likelihood, the model whose optimum probabilistic PCA
    is."""
    c = config
    needs = {
        "architecture='mlp'": c.architecture == "mlp",
        "hidden=()": c.hidden == (),
        "decoder_hidden=() or None": c.decoder_layers == (),
        "likelihood='isotropic_gaussian'": c.likelihood == "isotropic_gaussian",
        "no conditions (batch, labels, covariates)": c.n_covariates == 0,
        "missing='error'": c.missing != "mask",
        "posterior_batch_norm=False": not c.posterior_batch_norm and not c.output_batch_norm,
    }
    return ", ".join(need for need, met in needs.items() if not met)


def require_ppca(config: ModelConfig) -> None:
    """Raise ValueError naming what a model of ``config`` lacks for ``init="pca"``."""
    missing = ppca_unmet(config)
    if missing:
        raise ValueError(
            f"init='pca' sets a linear model with an isotropic Gaussian likelihood; this one "
            f"lacks: {missing}. Set those, or init='random'"
        )


def _ppca(X: torch.Tensor, k: int) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(noise variance, (d, k) loadings, (d,) mean) of probabilistic PCA's maximum-likelihood
    fit to the rows of ``X``; loadings beyond the data's rank (or the noise level) are 0."""
    n, d = X.shape
    mean = X.mean(0)
    centred = X - mean
    if min(n, d) > PPCA_EXACT:  # a randomized SVD of the top axes (Halko et al. 2011)
        _, s, V = torch.svd_lowrank(centred, q=min(k + 10, n, d), niter=4)
        axes = V.T
    else:
        _, s, axes = torch.linalg.svd(centred, full_matrices=False)
    variances = (s**2 / n)[:k]
    total = float((centred**2).sum()) / n
    kept = len(variances)
    s2 = max((total - float(variances.sum())) / max(d - kept, 1), total * 1e-6, PPCA_MIN_S2)
    loadings = torch.zeros(d, k, dtype=X.dtype, device=X.device)
    loadings[:, :kept] = axes[:kept].T * (variances - s2).clamp(min=0).sqrt()
    return s2, loadings, mean


# Above this many rows and features, init_ppca takes the top axes by a randomized SVD.
PPCA_EXACT = 4_000
PPCA_MIN_S2 = math.exp(2 * MIN_LOG_SCALE)  # the Gaussian likelihoods' SD floor, squared

LOGVAR_MAX = 20.0  # posterior variance at most e^20 (sd e^10): finite scores on any input


def _noise(
    shape: tuple[int, ...],
    generator: torch.Generator | list[torch.Generator] | None,
    device: torch.device,
) -> torch.Tensor:
    """(k, B, L) standard normal noise; from a list of B generators, row b's noise is drawn
    by generator b alone, so it does not depend on which rows are drawn with it."""
    if isinstance(generator, list):
        rows = [torch.randn((shape[0], shape[2]), generator=g) for g in generator]
        return torch.stack(rows, dim=1).to(device)
    return torch.randn(shape, generator=generator, device=device)


def prior_kl(qz: Normal) -> torch.Tensor:
    """(B,) KL(q(z | x) || N(0, I)), in closed form: 0.5 * (mu^2 + sigma^2 - 1) - log sigma per
    feature. Written out rather than through ``kl_divergence``, whose standard-normal prior
    checks its arguments on the host every step (a stall on a GPU, and no CUDA graph)."""
    mu, sigma = qz.loc, qz.scale
    return (0.5 * (mu.square() + sigma.square() - 1) - sigma.log()).sum(-1)


def observed_sum(values: torch.Tensor, observed: torch.Tensor | None) -> torch.Tensor:
    """(B,) per-entry ``values`` (B, D) summed over the ``observed`` entries (all when None);
    the others may hold NaN."""
    return values.sum(-1) if observed is None else _fill(values, observed).sum(-1)


def _fill(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """x where ``keep``, else 0 (a where, not a product: NaN * 0 is NaN, in gradients too)."""
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))
