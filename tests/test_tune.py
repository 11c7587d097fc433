"""vaekit.tune and `vaekit tune`: the search space and its file, fixed settings, pruning,
resuming a study, a killed trial retried, and what the run leaves in its folder."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

optuna = pytest.importorskip("optuna")

import vaekit  # noqa: E402
from vaekit.auto import Profile  # noqa: E402
from vaekit.tuning import read_space, split_rows, tune  # noqa: E402
from vaekit.tuning.space import default_space  # noqa: E402
from vaekit.tuning.study import parse_timeout, shown_url, storage  # noqa: E402

FAST = {"epochs": 2, "hidden": ()}  # two epochs of linear maps: a trial in a fraction of a second


def data(n: int = 80, d: int = 6, seed: int = 0) -> np.ndarray:
    """(n, d) float64: three features share a factor, the others are noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[:, :3] += 2 * rng.normal(size=(n, 1))
    return X


class OddPruner(optuna.pruners.BasePruner):
    """Prunes every odd-numbered trial at its first report: pruning, deterministically."""

    def prune(self, study, trial) -> bool:  # noqa: ANN001
        return trial.number % 2 == 1


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tuning run with an output folder, shared by the checks of what it wrote."""
    out = tmp_path_factory.mktemp("tune") / "out"
    fixed = {**FAST, "activation": "tanh", "scale": "minmax"}  # a setting and a preprocessing flag
    result = tune(data(), out=out, n_trials=3, fixed=fixed,
                  pruner=OddPruner(), n_draws=5, heartbeat=None)
    return result, out


# ---------------------------------------------------------------------------- the space
def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_space_file_overrides_fixes_and_reads_choices(tmp_path):
    tuned, fixed = read_space(write(tmp_path, (
        "latent: [2, 6]\n"  # an alias of n_latent
        "lr: {low: 1.0e-3, high: 1.0e-2, log: true}\n"
        "hidden: {choices: ['', '16', [8, 4]]}\n"
        "beta: 1.0\n"
    )))
    assert set(tuned) == {"n_latent", "lr", "hidden"} and fixed == {"beta": 1.0}
    latent = tuned["n_latent"]
    assert (latent.low, latent.high, latent.integer) == (2, 6, True)
    assert tuned["lr"].log and not tuned["lr"].integer
    assert tuned["hidden"].choices == ("", "16", "8,4")


@pytest.mark.parametrize(("text", "match"), [
    ("n_latnt: [2, 8]\n", "n_latnt"),
    ("seed: [0, 3]\n", "seed cannot be tuned"),
    ("condition: batch\n", "condition cannot be tuned"),
    ("n_latent: [8, 2]\n", "low < high"),
    ("n_latent: [0, 4]\n", "n_latent must be a positive integer"),
    ("lr: {low: 0.0, high: 0.1}\n", "space file .*lr must be a number > 0"),
    ("dropout: {low: 0.0, high: 0.2, log: true}\n", "log must be true or false"),
    ("likelihood: [1, 2]\n", "takes no range"),
    ("likelihood: {choices: [gaussian, nope]}\n", "nope"),
    ("n_latent: {between: [1, 2]}\n", "must be a value"),
    ("n_latent: [\n", "not valid YAML"),
])
def test_bad_space_files_are_refused_naming_the_setting(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        read_space(write(tmp_path, text))


def test_default_space_follows_the_kind_of_data():
    counts = default_space(Profile(5000, 100, "counts"))
    assert counts["likelihood"].choices == ("nb", "zinb", "poisson")
    assert "likelihood" not in default_space(Profile(5000, 100, "binary"))
    small = default_space(Profile(100, 10, "real"))
    assert max(small["batch_size"].choices) <= 100 // 4 or small["batch_size"].choices == (16,)
    assert {"n_latent", "hidden", "beta", "kl_warmup", "lr", "batch_size", "dropout"} <= set(small)


def test_timeouts_and_storage_urls():
    assert [parse_timeout(t) for t in ("90", "90s", "30m", "1.5h", None)] == [
        90, 90, 1800, 5400, None]
    for bad in ("ten", "30 minutes", "0", "-5m", "inf"):
        with pytest.raises(ValueError, match="timeout"):
            parse_timeout(bad)
    for bad in ("study.db", "foo://x", "http://host/db", ""):
        with pytest.raises(ValueError, match="database URL"):
            storage(bad, None)
    assert shown_url("postgresql://me:secret@host/db") == "postgresql://me:***@host/db"


def test_an_unreachable_database_is_a_clear_error():
    pytest.importorskip("psycopg2")
    with pytest.raises(ValueError, match="cannot open the study storage"):
        storage("postgresql://nobody:pw@127.0.0.1:1/none", None)


def test_the_split_is_disjoint_complete_and_seeded():
    X = pd.DataFrame(data(50))
    split = split_rows(X, None, 0.2, 0.2, seed=3)
    parts = [split.rows[k] for k in ("train", "valid", "test")]
    assert sorted(np.concatenate(parts).tolist()) == list(range(50))
    assert [len(p) for p in parts] == [30, 10, 10]
    assert np.array_equal(split.rows["test"], split_rows(X, None, 0.2, 0.2, seed=3).rows["test"])
    assert split.test.index.tolist() == split.rows["test"].tolist()


# ---------------------------------------------------------------------------- a run
def test_fixed_settings_pass_through_and_leave_the_space(run):
    result, _ = run
    assert result.settings["activation"] == "tanh" and result.settings["epochs"] == 2
    assert not {"epochs", "hidden", "activation"} & set(result.space)
    for trial in result.study.trials:
        assert not {"epochs", "hidden", "activation"} & set(trial.params)
    for model in (result.model, result.default_model):
        assert model.settings_["activation"] == "tanh"
        assert "minmax" in str(model.settings_["preprocess"]).lower()


def test_pruned_trials_are_reported(run):
    result, out = run
    table = pd.read_csv(out / "trials.csv")
    assert table["state"].tolist() == ["COMPLETE", "PRUNED", "COMPLETE"]
    assert table.loc[1, "pruned_at_epoch"] == 0 and table["pruned_at_epoch"].isna().sum() == 2
    assert table.loc[0, "epochs"] == 2 and np.isfinite(table.loc[0, "value"])


def test_the_best_model_folder_loads_with_the_best_settings(run):
    result, out = run
    model = vaekit.load(out / "model")
    best = result.study.best_trial
    assert model.settings_["n_latent"] == best.params["n_latent"]
    assert model.metadata_["tuning"]["best_trial"] == best.number
    split = result.split
    # the saved model is the refitted one: the same test figure (iwae draws are seeded)
    again = model.log_likelihood(split.test, n_draws=5).mean()
    assert again == pytest.approx(result.test["tuned"], rel=1e-5)


def test_the_report_is_self_contained_and_nothing_temporary_is_left(run):
    result, out = run
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3  # history, importances, pruning
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert f"{result.test['tuned']:.3f}" in page and f"{result.test['default']:.3f}" in page
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or ".old-" in p.name]


def test_the_trials_table_is_written_atomically(run, monkeypatch):
    from vaekit.tuning.output import write_trials

    result, out = run
    before = (out / "trials.csv").read_bytes()

    def half(self, path, **kw):  # noqa: ANN001
        Path(path).write_text("number,sta")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half)
    with pytest.raises(OSError):
        write_trials(result.study, out / "trials.csv")
    assert (out / "trials.csv").read_bytes() == before
    assert not list(out.glob("*.tmp"))


def test_a_study_resumes_where_it_stopped(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = tune(data(), n_trials=2, storage_url=url, fixed=FAST, n_draws=5, heartbeat=None)
    values = [t.value for t in first.study.trials]
    again = tune(data(), n_trials=3, storage_url=url, fixed=FAST, n_draws=5, heartbeat=None)
    trials = again.study.trials
    assert [t.number for t in trials] == [0, 1, 2]
    assert [t.value for t in trials[:2]] == values  # the first two kept, one more run
    assert trials[2].params != trials[0].params  # the resumed sampler draws a new point
    with pytest.raises(ValueError, match="new study name"):  # other data: refused
        tune(data(60), n_trials=3, storage_url=url, fixed=FAST, heartbeat=None)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_killed_trial_is_failed_and_retried_never_counted(tmp_path):
    """A trial whose worker stopped beating (as after SIGKILL) becomes FAIL when the next
    worker starts, and a copy of it runs; only completed trials count towards n_trials."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    store = storage(url, heartbeat=1)
    study = optuna.create_study(storage=store, study_name="vaekit", direction="maximize")
    dead = study.ask()
    store.record_heartbeat(dead._trial_id)
    # stale once more than the grace period (2 beats = 2 s) old, by SQLite's clock, which
    # keeps whole seconds: an elapsed 2.5 s can read as 2, not past it (it failed so once)
    time.sleep(4.0)
    result = tune(data(), n_trials=2, storage_url=url, fixed=FAST, n_draws=5, heartbeat=1)
    states = [t.state.name for t in result.study.trials]
    assert states[0] == "FAIL" and states.count("COMPLETE") == 2 and len(states) == 3
    # optuna 4.9 renamed the callback; each reads the mark its own name wrote
    names = ("RetryHeartbeatStaleTrialCallback", "RetryFailedTrialCallback")
    retry = next(getattr(optuna.storages, n) for n in names if hasattr(optuna.storages, n))
    retried = [t for t in result.study.trials if retry.retried_trial_number(t) == 0]
    assert [t.state.name for t in retried] == ["COMPLETE"]


def test_objectives_elbo_and_a_user_score():
    elbo = tune(data(), n_trials=1, fixed=FAST, objective_name="elbo", heartbeat=None)
    assert elbo.test["objective"] == "elbo"

    def spread(model, X, y):  # noqa: ANN001
        return float(model.transform(X).std())

    mine = tune(data(), n_trials=1, fixed=FAST, objective_name=spread, heartbeat=None)
    assert mine.study.trials[0].value == pytest.approx(
        spread(_fit_like(mine), mine.split.valid, None), rel=1e-6
    )


def test_objectives_of_an_annotation():
    import anndata

    X = data(80)
    adata = anndata.AnnData(X)
    adata.obs["group"] = np.where(X[:, 0] > np.median(X[:, 0]), "high", "low")
    adata.obs["odd"] = np.where(np.arange(80) % 5 == 0, "anomaly", "normal")
    sep = tune(adata, n_trials=1, fixed=FAST, objective_name="separation:group", heartbeat=None)
    assert -1 <= sep.test["tuned"] <= 1 and sep.study.trials[0].state.name == "COMPLETE"
    auc = tune(adata, n_trials=1, fixed=FAST, objective_name="auroc:odd", heartbeat=None)
    assert 0 <= auc.test["tuned"] <= 1
    with pytest.raises(ValueError, match="'nope'"):
        tune(adata, n_trials=1, fixed=FAST, objective_name="auroc:nope", heartbeat=None)


def _fit_like(result):  # noqa: ANN001
    """The first trial's model, fitted again as the trial fitted it."""
    from vaekit.tuning.study import settings_of

    params = result.study.trials[0].params
    model = vaekit.VAE(**settings_of(params, result.fixed), seed=0, verbose=False)
    return model.fit(result.split.train)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"objective_name": "aic"}, "unknown objective"),
    ({"n_trials": 0}, "n_trials"),
    ({"fixed": {"condition": "batch"}}, "not settings of the model"),
    ({"fixed": {"n_latnt": 3}}, "n_latnt"),
    ({"fixed": {"n_latent": 0}}, "n_latent"),
    ({"test_fraction": 0.7}, "test_fraction"),
    ({"storage_url": "mongodb://x"}, "database URL"),
])
def test_bad_arguments_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tune(data(), **kwargs)


def test_a_fit_callback_sees_every_epoch_and_can_end_the_fit():
    seen = []
    model = vaekit.VAE(epochs=3, hidden=(), seed=0, verbose=False)
    model.fit(data(), callback=lambda epoch, record: seen.append((epoch, record["val_loss"])))
    assert [e for e, _ in seen] == [0, 1, 2]
    assert [v for _, v in seen] == pytest.approx(model.history_["val_loss"].tolist(), rel=0)

    def stop(epoch, record):  # noqa: ANN001
        if epoch == 1:
            raise optuna.TrialPruned("enough")

    fresh = vaekit.VAE(epochs=3, hidden=(), seed=0, verbose=False)
    with pytest.raises(optuna.TrialPruned):
        fresh.fit(data(), callback=stop)
    assert not hasattr(fresh, "module_")  # a fit that ends early leaves the model unfitted
