"""vaekit: variational autoencoders for expression tables, single-cell counts, images and more.

The public names are imported on first use (:pep:`562`), so that importing one part of the
package, such as :mod:`vaekit.saving`, does not load the layers above it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vaekit._lazy import lazy_exports
from vaekit._version import __version__

if TYPE_CHECKING:
    from vaekit.data.readers import read
    from vaekit.likelihoods import LIKELIHOODS
    from vaekit.tuning import tune
    from vaekit.vae import VAE, load

# public name -> the module that defines it
_EXPORTS = {
    "LIKELIHOODS": "vaekit.likelihoods",
    "VAE": "vaekit.vae",
    "load": "vaekit.vae",
    "read": "vaekit.data.readers",
    "tune": "vaekit.tuning",
}

__all__ = ["LIKELIHOODS", "VAE", "__version__", "load", "read", "tune"]


__getattr__, __dir__ = lazy_exports("vaekit", globals(), _EXPORTS)
