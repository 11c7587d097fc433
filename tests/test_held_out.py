"""The rows training holds out for validation: train returns them, the model keeps them as
``validation_rows_``, its folder stores them, and the report evaluates on the stored rows
(drawing them again from the seed only for folders saved before vaekit stored them)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import vaekit
from vaekit.config import ModelConfig, TrainConfig
from vaekit.data import DenseRows
from vaekit.model import VAEModule
from vaekit.report import summary
from vaekit.train import train

pytestmark = pytest.mark.filterwarnings("ignore::vaekit.train.PosteriorCollapseWarning")


class RecordingRows(DenseRows):
    """Dense rows that note which rows were taken while the module trained, and which while it
    was evaluated."""

    def __init__(self, X: np.ndarray, module: VAEModule) -> None:
        super().__init__(X)
        self.module = module
        self.trained_on: set[int] = set()
        self.evaluated_on: set[int] = set()

    def take(self, index: torch.Tensor) -> torch.Tensor:
        seen = self.trained_on if self.module.training else self.evaluated_on
        seen.update(index.tolist())
        return super().take(index)


def test_train_returns_the_rows_it_never_trained_on(digits):
    X = digits[0][:200]
    module = VAEModule(ModelConfig(n_input=64, n_latent=2, hidden=(16,), likelihood="bernoulli"))
    rows = RecordingRows(X, module)
    config = TrainConfig(epochs=2, batch_size=32, validation_fraction=0.15, seed=7)
    held_out = train(module, rows, None, config).validation_rows
    assert held_out.dtype == torch.long and len(held_out) == int(200 * 0.15)
    assert held_out.tolist() == sorted(rows.evaluated_on)
    assert rows.trained_on == set(range(200)) - rows.evaluated_on
    none = train(module, DenseRows(X), None, TrainConfig(epochs=1, validation_fraction=0.0))
    assert none.validation_rows.tolist() == []


@pytest.fixture(scope="module")
def saved(digits, tmp_path_factory):
    X = digits[0][:150]
    model = vaekit.VAE(
        n_latent=2, hidden=(16,), likelihood="bernoulli", epochs=2, validation_fraction=0.2,
        seed=11, verbose=False,
    ).fit(X)  # fmt: skip
    path = tmp_path_factory.mktemp("held_out") / "m"
    model.save(path)
    return model, path, X


def _drop_rows(path) -> None:
    """Make ``path`` a folder as vaekit wrote it before it stored the held-out rows."""
    config_file = path / "config.json"
    config = json.loads(config_file.read_text())
    del config["training"]["validation_rows"]
    config_file.write_text(json.dumps(config))


def test_the_model_keeps_saves_and_reloads_its_held_out_rows(saved):
    model, path, X = saved
    rows = model.validation_rows_
    assert rows.dtype == np.int64 and len(rows) == int(len(X) * 0.2)
    assert np.all(np.diff(rows) > 0) and rows.min() >= 0 and rows.max() < len(X)
    # The rows train() drew: the first n * fraction of its seeded permutation.
    permutation = torch.randperm(len(X), generator=torch.Generator().manual_seed(11))
    np.testing.assert_array_equal(rows, np.sort(permutation[: len(rows)].numpy()))
    config = json.loads((path / "config.json").read_text())
    assert config["training"]["validation_rows"] == rows.tolist()
    np.testing.assert_array_equal(vaekit.load(path).validation_rows_, rows)


def test_the_report_evaluates_on_the_stored_rows_not_on_a_new_draw(saved, monkeypatch):
    model, path, X = saved
    loaded = vaekit.load(path)
    loaded.validation_rows_ = np.array([3, 5, 8])  # not what the seed would draw

    def no_draw(*args, **kwargs):
        raise AssertionError("the stored rows must be used")

    monkeypatch.setattr(summary, "seeded_split", no_draw)
    evaluated = summary.held_out(loaded, len(X), X.shape[1], training_data=True)
    np.testing.assert_array_equal(evaluated.rows, [3, 5, 8])
    assert evaluated.description == "the 3 validation samples held out in training"
    with pytest.raises(ValueError, match="held out row 8 in training, but DATA has 5 rows"):
        summary.held_out(loaded, 5, X.shape[1], training_data=True)


def test_an_older_folder_without_the_rows_loads_and_the_report_draws_them_again(
    saved, tmp_path
):
    model, path, X = saved
    old = tmp_path / "old"
    model.save(old)
    _drop_rows(old)
    loaded = vaekit.load(old)
    assert not hasattr(loaded, "validation_rows_")
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))
    evaluated = summary.held_out(loaded, len(X), X.shape[1], training_data=True)
    np.testing.assert_array_equal(evaluated.rows, model.validation_rows_)
    assert evaluated.description.endswith("(drawn again from its seed)")
    loaded.save(tmp_path / "again")  # still without the key: nothing is made up
    config = json.loads((tmp_path / "again" / "config.json").read_text())
    assert "validation_rows" not in config["training"]
