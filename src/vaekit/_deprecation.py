"""Keyword arguments renamed in the public API, still accepted under their old names for a
while with a :class:`FutureWarning` (shown to users, unlike ``DeprecationWarning``)."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def renamed_keyword(old: str, new: str, why: str = "") -> Callable[[F], F]:
    """Decorate a function whose keyword ``old`` is now ``new``: ``old=`` still works, with a
    FutureWarning naming ``new`` (and ``why``, when given); passing both is a TypeError.

    Examples
    --------
    >>> @renamed_keyword("n_samples", "n_draws")
    ... def score(X, *, n_draws=10):
    ...     return n_draws
    >>> import warnings; warnings.simplefilter("ignore")
    >>> score(None, n_samples=3)
    3
    """

    def decorate(fn: F) -> F:
        name = fn.__qualname__

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"{name}() got both {old}= and {new}=; pass only {new}=")
                warnings.warn(
                    f"{name}(): the keyword {old}= is renamed {new}={why}; pass {new}= instead",
                    FutureWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


draws_keyword = renamed_keyword(
    "n_samples", "n_draws", " (n_samples counts rows, as in scikit-learn)"
)
"""The decorator for methods whose Monte Carlo draws were called ``n_samples``."""
