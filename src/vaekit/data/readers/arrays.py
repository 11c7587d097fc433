"""NumPy (.npy, .npz, scipy.sparse .npz) and MATLAB (.mat) arrays. Values are kept as stored
(no scaling): a {0, 1} uint8 matrix stays {0, 1}."""

from __future__ import annotations

import math
import pickle
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import scipy.io
import scipy.sparse as sp
from anndata import AnnData

from vaekit.data.readers.common import LABEL_NAMES, build, guess_labels, numeric_matrix
from vaekit.data.readers.registry import reader
from vaekit.validation import check_fits, format_bytes

_NPY_ERRORS = (ValueError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile)
# the keys scipy.sparse.save_npz writes (with indptr for CSR/CSC/BSR, row/col for COO)
_SPARSE_KEYS = {"format", "shape", "data"}
_NAME_KEYS = ("obs_names", "var_names")


@reader(".npy", what="NumPy .npy array")
def read_npy(path: Path) -> AnnData:
    """A 2-D array (samples x features), or 3-D/4-D images flattened; names are generated.

    Examples
    --------
    >>> adata = read_npy(Path("X.npy"))  # doctest: +SKIP
    """
    try:
        with open(path, "rb") as f:
            check_npy_header(f, path.stat().st_size, str(path))
        array = np.load(path, allow_pickle=False)
    except _NPY_ERRORS as err:
        raise ValueError(
            f"{path} is not a readable .npy file of numbers ({err}); save it with "
            "numpy.save(path, array) from a numeric array"
        ) from None
    X, image_shape = numeric_matrix(array, path)
    return build(X, path, image_shape=image_shape)


@reader(".npz", what="NumPy .npz archive", options=("layer", "labels"))
def read_npz(path: Path, *, layer: str | None = None, labels: str | None = None) -> AnnData:
    """An .npz archive: the array ``X`` (or ``layer``, or the only array), optional
    ``obs_names``/``var_names`` and labels (``labels``, else ``y`` or ``labels``); or a
    ``scipy.sparse.save_npz`` file, read as CSR.

    Examples
    --------
    >>> adata = read_npz(Path("data.npz"), labels="y")  # doctest: +SKIP
    """
    with _npz_errors(path):
        archive = np.load(path, allow_pickle=False)
    with archive:
        _check_members(archive, path)
        if _SPARSE_KEYS <= set(archive.files):
            with _npz_errors(path):
                return build(sp.load_npz(path), path)
        return _dense_npz(_Members(archive, path), path, layer, labels)


@reader(".mat", what="MATLAB .mat file", options=("layer", "labels"))
def read_mat(path: Path, *, layer: str | None = None, labels: str | None = None) -> AnnData:
    """A MATLAB v4-v7.2 file: the variable ``X`` (or ``layer``, or the only 2-D numeric array);
    labels from the variable ``labels`` names, else ``y``/``labels`` when present.

    Examples
    --------
    >>> adata = read_mat(Path("binarized_mnist_test.mat"))  # doctest: +SKIP
    """
    try:
        variables = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    except NotImplementedError:
        raise ValueError(
            f"{path} is a MATLAB v7.3 file (HDF5 inside); re-save it in MATLAB with "
            "save(path, 'X', '-v7'), or rename it to .h5 and pass layer= with the variable"
        ) from None
    except (ValueError, TypeError, OSError) as err:
        raise ValueError(f"{path} is not a readable MATLAB .mat file ({err})") from None
    name = layer or _matrix_name(variables, path)
    return _from_arrays(variables, path, name, labels)


def check_npy_header(f: IO[bytes], size: int, source: str) -> tuple[tuple[int, ...], np.dtype]:
    """Read an .npy header from ``f`` and check it before any value is read: no more bytes
    declared than the ``size`` bytes the file holds, and room in memory for them and their
    float32 copy.

    Returns
    -------
    (shape, dtype)

    Raises
    ------
    ValueError
        For a damaged header, a declared size the file or the memory cannot hold, or values
        that are not real numbers.
    """
    version = np.lib.format.read_magic(f)
    read_header = _HEADER_READERS.get(version)
    if read_header is None:
        raise ValueError(f"{source}: .npy format version {version} is not supported")
    shape, _, dtype = read_header(f)
    n_bytes = math.prod(shape) * dtype.itemsize
    if n_bytes > size - f.tell():
        raise ValueError(
            f"{source} is truncated: its header declares shape {shape} of {dtype} "
            f"({format_bytes(n_bytes)}) but it holds {format_bytes(max(0, size - f.tell()))} "
            "of values; save it again"
        )
    check_fits(n_bytes + 4 * math.prod(shape), f"{source} {shape} {dtype} and its float32 copy")
    return shape, dtype


_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _check_members(archive: Any, path: Path) -> None:
    """Check every member's .npy header against its size before any member is loaded."""
    with _npz_errors(path):
        for info in archive.zip.infolist():
            with archive.zip.open(info) as f:
                check_npy_header(f, info.file_size, f"{path} (array {info.filename!r})")


@contextmanager
def _npz_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except _NPY_ERRORS as err:
        raise ValueError(
            f"{path} is not a readable .npz archive of numeric arrays ({err}); save it with "
            "numpy.savez(path, X=..., y=...) or scipy.sparse.save_npz"
        ) from None


class _Members(Mapping):
    """An open .npz archive whose members load on access, with load errors naming the file."""

    def __init__(self, archive: Mapping[str, np.ndarray], path: Path) -> None:
        self.archive, self.path = archive, path

    def __getitem__(self, name: str) -> np.ndarray:
        with _npz_errors(self.path):
            return self.archive[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.archive)

    def __len__(self) -> int:
        return len(self.archive)


def _dense_npz(
    archive: Mapping[str, Any], path: Path, layer: str | None, labels: str | None
) -> AnnData:
    arrays = list(archive.keys())
    name = layer or ("X" if "X" in arrays else _only(arrays, path))
    obs_names, var_names = (archive[k] if k in arrays else None for k in _NAME_KEYS)
    return _from_arrays(archive, path, name, labels, obs_names=obs_names, var_names=var_names)


def _only(arrays: list[str], path: Path) -> str:
    data = [k for k in arrays if k not in _NAME_KEYS + LABEL_NAMES]
    if len(data) != 1:
        raise ValueError(
            f"{path} holds arrays {arrays} and none is named 'X'; pass layer='NAME' to say "
            "which is the samples x features matrix"
        )
    return data[0]


def _matrix_name(variables: Mapping[str, Any], path: Path) -> str:
    if "X" in variables:
        return "X"
    # MATLAB stores vectors as 2-D too, so label vectors are not candidates
    matrices = [k for k, v in variables.items() if _is_matrix(v) and k not in LABEL_NAMES]
    if len(matrices) != 1:
        shapes = {k: getattr(v, "shape", type(v).__name__) for k, v in variables.items()}
        raise ValueError(
            f"{path} holds variables {shapes} and {len(matrices)} of them are 2-D numeric "
            "matrices, none named 'X'; pass layer='NAME' to say which to read"
        )
    return matrices[0]


def _is_matrix(value: Any) -> bool:
    if sp.issparse(value):
        return True
    return isinstance(value, np.ndarray) and value.ndim == 2 and value.dtype.kind in "biuf"


def _from_arrays(
    arrays: Mapping[str, Any], path: Path, name: str, labels: str | None, **names: Any
) -> AnnData:
    """AnnData from the matrix ``arrays[name]`` and the labels array, if any."""
    if name not in arrays:
        raise ValueError(f"{path} has no array {name!r} (layer=); it holds {list(arrays)}")
    matrix = arrays[name]  # read once: an .npz member is loaded on every access
    X, image_shape = (matrix, None) if sp.issparse(matrix) else numeric_matrix(matrix, path, name)
    if labels is not None and labels not in arrays:
        raise ValueError(f"{path} has no array {labels!r} (labels=); it holds {list(arrays)}")
    found = guess_labels(arrays, X.shape[0], skip=name) if labels is None else arrays[labels]
    return build(X, path, labels=found, image_shape=image_shape, **names)
