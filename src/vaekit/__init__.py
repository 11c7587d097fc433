"""vaekit: variational autoencoders for expression tables, single-cell counts, images and more."""

from vaekit._version import __version__
from vaekit.data.readers import read
from vaekit.estimator import VAE, load
from vaekit.likelihoods import LIKELIHOODS

__all__ = ["LIKELIHOODS", "VAE", "__version__", "load", "read"]
