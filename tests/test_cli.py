"""The command line end to end: every command, settings files, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits

import vaekit
from vaekit.cli import main
from vaekit.options import SETTINGS


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run `vaekit ARGS` in this process; return (exit code, stdout, stderr)."""
    argv = sys.argv
    sys.argv = ["vaekit", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(result: tuple[int, str, str], match: str) -> None:
    code, _, err = result
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert match in err, err


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Digits as a CSV with sample IDs, and an annotation table."""
    folder = tmp_path_factory.mktemp("tables")
    d = load_digits()
    X = pd.DataFrame(d.data[:400] / 16, columns=[f"px{i}" for i in range(64)],
                     index=pd.Index([f"s{i}" for i in range(400)], name="sample"))
    X.to_csv(folder / "digits.csv")
    pd.DataFrame({"sample": X.index, "digit": d.target[:400]}).to_csv(
        folder / "labels.tsv", sep="\t", index=False)
    return folder


@pytest.fixture(scope="module")
def trained(tables, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "m"
    code = main_args(["train", tables / "digits.csv", "-o", out, "--likelihood", "bernoulli",
                      "--latent", "3", "--hidden", "32", "--epochs", "3", "--seed", "0",
                      "--quiet"])
    assert code == 0
    return out


def main_args(args: list) -> int:
    argv = sys.argv
    sys.argv = ["vaekit", *map(str, args)]
    try:
        main()
    except SystemExit as exit_:
        return exit_.code or 0
    finally:
        sys.argv = argv
    return 0


def test_version_and_help_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-m", "vaekit.cli", "--version"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"vaekit {vaekit.__version__}"
    out = subprocess.run([sys.executable, "-m", "vaekit.cli", "--help"], capture_output=True,
                         text=True)
    for command in ("train", "encode", "reconstruct", "generate", "evaluate", "info", "demo"):
        assert command in out.stdout


def test_train_saves_the_model_and_the_command(trained):
    model = vaekit.load(trained)
    assert model.settings_["n_latent"] == 3 and model.settings_["hidden"] == (32,)
    assert model.metadata_["command"].startswith("vaekit train ")
    assert model.metadata_["settings"]["likelihood"] == "bernoulli"


def test_settings_file_then_flags_and_conditions(tables, tmp_path, capsys):
    settings = tmp_path / "s.yaml"
    settings.write_text("likelihood: bernoulli\nlatent: 4\nepochs: 5\nhidden: ''\n")
    code, out, err = cli(capsys, "train", tables / "digits.csv", "-o", tmp_path / "m",
                         "--config", settings, "--epochs", "2", "--annotations",
                         tables / "labels.tsv", "--condition", "digit", "--quiet")
    assert code == 0, err
    model = vaekit.load(tmp_path / "m")
    assert (model.settings_["n_latent"], model.settings_["epochs"]) == (4, 2)
    assert model.settings_["hidden"] == ()
    assert [c.name for c in model.covariates_.columns] == ["digit"]
    code, out, err = cli(capsys, "encode", tmp_path / "m", tables / "digits.csv", "-o",
                         tmp_path / "z.tsv", "--annotations", tables / "labels.tsv")
    assert code == 0, err
    assert pd.read_csv(tmp_path / "z.tsv", sep="\t", index_col=0).shape == (400, 4)


def test_every_setting_from_a_file_or_a_flag_is_used_and_saved(tables, tmp_path, capsys):
    settings = tmp_path / "s.yaml"
    settings.write_text("dropout: 0.1\npatience: 5\nlikelihood: bernoulli\nlatent: 3\n"
                        "epochs: 2\nbatch_norm: true\n")
    code, out, err = cli(capsys, "train", tables / "digits.csv", "-o", tmp_path / "m",
                         "--config", settings, "--activation", "tanh", "--no-early-stopping",
                         "--decoder-hidden", "16", "--grad-clip", "5", "--weight-decay", "1e-4",
                         "--validation-fraction", "0.2", "--seed", "0", "--quiet")
    assert code == 0, err
    model = vaekit.load(tmp_path / "m")
    used = {"dropout": 0.1, "patience": 5, "batch_norm": True, "activation": "tanh",
            "early_stopping": False, "decoder_hidden": (16,), "grad_clip": 5.0,
            "weight_decay": 1e-4, "validation_fraction": 0.2, "n_latent": 3}
    assert {k: model.settings_[k] for k in used} == used
    config = model.module_.config
    assert (config.dropout, config.batch_norm, config.decoder_layers) == (0.1, True, (16,))
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["metadata"]["settings"]["dropout"] == 0.1
    assert saved["metadata"]["settings"]["patience"] == 5
    assert len(model.history_) == 2  # early stopping off: every epoch ran


def test_a_misspelt_setting_names_the_nearest_one(tables, tmp_path, capsys):
    code, _, err = cli(capsys, "train", tables / "digits.csv", "-o", tmp_path / "m",
                       "--dorpout", "0.1")
    assert code == 2 and "--dropout" in err and "Traceback" not in err
    settings = tmp_path / "s.yaml"
    settings.write_text("dorpout: 0.1\n")
    assert_user_error(cli(capsys, "train", tables / "digits.csv", "-o", tmp_path / "m",
                          "--config", settings), "did you mean 'dropout'?")
    assert not (tmp_path / "m").exists()


def test_train_help_lists_every_setting():
    env = {**os.environ, "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "vaekit.cli", "train", "--help"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    for setting in SETTINGS:
        flag = "--" + setting.name.replace("_", "-")
        assert flag in out.stdout or not setting.cli, flag


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".parquet", ".csv.gz"])
def test_encode_writes_tables_keyed_by_sample(trained, tables, tmp_path, capsys, suffix):
    out = tmp_path / f"latent{suffix}"
    code, stdout, err = cli(capsys, "encode", trained, tables / "digits.csv", "-o", out)
    assert code == 0, err
    table = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(
        out, sep="\t" if suffix == ".tsv" else ",", index_col=0)
    assert table.shape == (400, 3) and table.index[0] == "s0"
    assert list(table.columns) == ["vae0", "vae1", "vae2"]


def test_encode_h5ad_writes_a_copy_with_obsm(trained, tables, tmp_path, capsys):
    X = pd.read_csv(tables / "digits.csv", index_col=0)
    adata = ad.AnnData(X.to_numpy(np.float32), obs=pd.DataFrame(index=X.index),
                       var=pd.DataFrame(index=X.columns))
    adata.write_h5ad(tmp_path / "in.h5ad")
    code, _, err = cli(capsys, "encode", trained, tmp_path / "in.h5ad", "-o",
                       tmp_path / "out.h5ad")
    assert code == 0, err
    out = ad.read_h5ad(tmp_path / "out.h5ad")
    assert out.obsm["X_vaekit"].shape == (400, 3)
    np.testing.assert_allclose(out.obsm["X_vaekit"], vaekit.load(trained).transform(X),
                               rtol=1e-5, atol=1e-6)
    assert_user_error(cli(capsys, "encode", trained, tmp_path / "in.h5ad", "-o",
                          tmp_path / "out.tsv"), "must end with one of ['.h5ad']")


def test_reconstruct_generate_evaluate_info(trained, tables, tmp_path, capsys):
    code, _, err = cli(capsys, "reconstruct", trained, tables / "digits.csv", "-o",
                       tmp_path / "rec.tsv")
    assert code == 0, err
    rec = pd.read_csv(tmp_path / "rec.tsv", sep="\t", index_col=0)
    assert rec.shape == (400, 64) and rec.columns[0] == "px0"
    code, _, err = cli(capsys, "generate", trained, "-n", "5", "-o", tmp_path / "new.csv")
    assert code == 0, err
    assert pd.read_csv(tmp_path / "new.csv", index_col=0).shape == (5, 64)
    code, out, err = cli(capsys, "evaluate", trained, tables / "digits.csv", "-k", "20",
                         "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) >= {"elbo", "reconstruction", "kl", "log_likelihood"}
    assert result["elbo"] == pytest.approx(-(result["reconstruction"] + result["kl"]))
    assert result["log_likelihood"] >= result["elbo"] - 1.0
    code, out, err = cli(capsys, "info", trained)
    assert code == 0 and "bernoulli" in out and "vaekit train" in out


def test_image_model_generates_a_png_grid_with_a_row_per_class(tmp_path, capsys):
    d = load_digits()
    for i in range(200):
        folder = tmp_path / "images" / str(d.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8)).save(folder / f"{i}.png")
    code, _, err = cli(capsys, "train", tmp_path / "images", "-o", tmp_path / "m",
                       "--likelihood", "bernoulli", "--latent", "2", "--epochs", "2",
                       "--condition", "label", "--quiet")
    assert code == 0, err
    assert vaekit.load(tmp_path / "m").image_shape_ == (8, 8)
    code, _, err = cli(capsys, "generate", tmp_path / "m", "-n", "4", "-o", tmp_path / "g.png")
    assert code == 0, err
    with Image.open(tmp_path / "g.png") as image:
        image.verify()
    with Image.open(tmp_path / "g.png") as image:  # 10 rows of 4, 2 px padding, doubled
        assert image.size == ((4 * 10 + 2) * 2, (10 * 10 + 2) * 2)
    code, _, err = cli(capsys, "generate", tmp_path / "m", "-n", "3", "--condition", "7",
                       "-o", tmp_path / "sevens.png")
    assert code == 0, err
    assert_user_error(cli(capsys, "generate", tmp_path / "m", "-n", "3", "--condition", "x",
                          "-o", tmp_path / "x.png"), "not a category of 'label'")


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "empty"),
        ("sample,a,b\n", "no data rows"),
        ("sample,a,b\ns1,1,2\ns2,1\n", "row"),
        ("sample,a,b\ns1,1,2\ns2,1,x\n", "'b'"),
        ("sample,a,b\ns1,1,2\ns1,3,4\n", "duplicate sample"),
        ("sample,a,a\ns1,1,2\ns2,3,4\n", "duplicate column names"),
        (b"\x1f\x8b\x08\x00garbage", "gzip"),
    ],
    ids=["empty", "header-only", "ragged", "text", "dup-samples", "dup-features", "corrupt-gz"],
)
def test_malformed_input_is_one_line_exit_2_and_no_output(tmp_path, capsys, content, match):
    name = "bad.csv.gz" if isinstance(content, bytes) else "bad.csv"
    data = write(tmp_path / name, content)
    out = tmp_path / "m"
    assert_user_error(cli(capsys, "train", data, "-o", out, "--epochs", "1", "--quiet"), match)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing written


def test_other_bad_input(tables, trained, tmp_path, capsys):
    assert_user_error(cli(capsys, "train", tmp_path / "missing.csv", "-o", tmp_path / "m"),
                      "missing.csv")
    zeros = pd.DataFrame(np.zeros((5, 3)), columns=list("abc"),
                         index=pd.Index([f"s{i}" for i in range(5)], name="sample"))
    zeros.iloc[0] = [1, 2, 3]
    zeros.to_csv(tmp_path / "zeros.csv")
    assert_user_error(cli(capsys, "train", tmp_path / "zeros.csv", "-o", tmp_path / "m",
                          "--likelihood", "poisson", "--quiet"), "all zero")
    nan = pd.DataFrame({"a": [1.0, np.nan], "b": [1.0, 2.0]}, index=["s1", "s2"])
    nan.to_csv(tmp_path / "nan.csv")
    assert_user_error(cli(capsys, "train", tmp_path / "nan.csv", "-o", tmp_path / "m",
                          "--quiet"), "NaN")
    assert_user_error(cli(capsys, "train", tables / "digits.csv", "-o",
                          tmp_path / "no" / "m"), "does not exist")
    assert_user_error(cli(capsys, "train", tables / "digits.csv", "-o", tmp_path / "m",
                          "--likelihood", "gamma"), "unknown likelihood")
    assert_user_error(cli(capsys, "encode", trained, tables / "digits.csv", "-o",
                          tmp_path / "z.xlsx"), "cannot tell the table format")
    assert_user_error(cli(capsys, "encode", tmp_path / "nomodel", tables / "digits.csv", "-o",
                          tmp_path / "z.tsv"), "no vaekit model")
    assert_user_error(cli(capsys, "encode", trained, tables, "-o", tmp_path / "z.tsv"),
                      str(tables))
    assert not (tmp_path / "m").exists() and not (tmp_path / "z.tsv").exists()
    code, _, err = cli(capsys, "no-such-command")
    assert code == 2 and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_output_folder(tables, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert_user_error(cli(capsys, "train", tables / "digits.csv", "-o", locked / "m"),
                          "not writable")
    finally:
        locked.chmod(0o700)


def test_unwritable_output_is_reported_before_training(tables, tmp_path, capsys, monkeypatch):
    """As root the folder check cannot be provoked by permissions: fake os.access instead."""
    import vaekit.atomic

    real = os.access
    monkeypatch.setattr(vaekit.atomic.os, "access",
                        lambda path, mode: mode != os.W_OK and real(path, mode))
    assert_user_error(cli(capsys, "train", tables / "digits.csv", "-o", tmp_path / "m"),
                      "is not writable")


def test_demo_writes_its_outputs_and_names_the_folder(tmp_path, capsys):
    code, out, err = cli(capsys, "demo", "-o", tmp_path / "d", "--epochs", "5", "--quiet")
    assert code == 0, err
    folder = tmp_path / "d"
    assert str(folder) in out
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["latent_test.tsv", "model", "reconstructions.png", "report.html",
                     "samples.png", "summary.json"]
    assert f"report: {folder / 'report.html'}" in out
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["epochs_trained"] == 5
    assert summary["test_log_likelihood_nats_k1000"] >= summary["test_elbo_nats"] - 1.0
    assert (folder / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert vaekit.load(folder / "model").settings_["n_latent"] == 8


def test_plot_latent_and_evaluate_report_latent_usage(trained, tables, tmp_path, capsys):
    out = tmp_path / "map.png"
    code, stdout, err = cli(capsys, "plot", "latent", trained, tables / "digits.csv",
                            "--annotations", tables / "labels.tsv", "--color", "digit", "-o", out)
    assert code == 0, err
    assert "wrote a pca map of 400 samples" in stdout
    with Image.open(out) as picture:
        assert picture.size[0] > 100 and picture.format == "PNG"
    assert_user_error(cli(capsys, "plot", "latent", trained, tables / "digits.csv",
                          "--color", "nope", "-o", tmp_path / "x.png"), "no column 'nope'")
    assert_user_error(cli(capsys, "plot", "latent", trained, tables / "digits.csv",
                          "-o", tmp_path / "x.gif"), "figure format")
    assert not (tmp_path / "x.png").exists()
    code, stdout, _ = cli(capsys, "evaluate", trained, tables / "digits.csv", "-k", "0")
    assert code == 0 and "active_units" in stdout and "KL per latent feature" in stdout
    code, stdout, _ = cli(capsys, "evaluate", trained, tables / "digits.csv", "-k", "0", "--json")
    assert len(json.loads(stdout)["kl_per_feature"]) == 3


# ----------------------------------------------------------------------------- the entry point
def test_no_arguments_print_the_help_and_exit_0(capsys):
    code, out, err = cli(capsys)
    assert code == 0 and err == ""
    assert "Usage: vaekit" in out and "train" in out and "interpret" in out


def test_usage_errors_are_one_line_naming_the_command(capsys):
    for args, match in [(("encode",), "Missing argument"), (("info", "m", "--bogus"), "--bogus"),
                        (("generate", "m", "-n", "many", "-o", "g.tsv"), "'-n'")]:
        code, out, err = cli(capsys, *args)
        assert code == 2 and out == "", err
        assert len(err.splitlines()) == 1 and err.startswith("error: ") and match in err, err
        assert f"(see `vaekit {args[0]} --help`)" in err, err  # not the test runner's name


def test_a_warning_is_one_line_without_a_source_path(trained, capsys, monkeypatch):
    import warnings

    from vaekit.train import PosteriorCollapseWarning

    real = vaekit.load

    def load_and_warn(path):
        warnings.warn("only 1 of 3 latent features\n  are active", PosteriorCollapseWarning,
                      stacklevel=1)
        return real(path)

    monkeypatch.setattr(vaekit, "load", load_and_warn)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code, out, err = cli(capsys, "info", trained)
    assert code == 0 and "latent features" in out
    assert err == "warning: only 1 of 3 latent features are active\n", err


@pytest.mark.parametrize(
    ("error", "code", "match"),
    [
        (OSError(28, "No space left on device", "z.tsv"), 2,
         "error: z.tsv: no space left on device; free some space"),
        (OSError(36, "File name too long", "x" * 10), 2,
         "error: xxxxxxxxxx: file name too long; give a shorter name"),
        (OSError(30, "Read-only file system", "z.tsv"), 2,
         "error: z.tsv: read-only file system; the file system is read-only"),
        (OSError(95, "Operation not supported"), 1, "error: OSError: [Errno 95]"),
    ],
    ids=["ENOSPC", "ENAMETOOLONG", "EROFS", "unexpected"],
)
def test_the_environments_os_errors_exit_2_with_what_to_do(capsys, monkeypatch, error, code,
                                                          match):
    """A full disk is the user's to fix (exit 2); an OSError nothing anticipated is a bug (1)."""
    def fail(path):
        raise error

    monkeypatch.setattr(vaekit, "load", fail)
    result = cli(capsys, "info", "m")
    assert result[0] == code and result[2].startswith(match) and len(result[2].splitlines()) == 1


# ----------------------------------------------------------------------------- outputs
def test_interpret_replaces_its_own_output_and_never_the_users(trained, tables, tmp_path,
                                                               capsys):
    from vaekit.analysis.findings import FILES

    data, out = tables / "digits.csv", tmp_path / "i"
    for _ in range(2):  # the second run replaces what the first wrote
        code, _, err = cli(capsys, "interpret", trained, data, "-o", out, "--quiet")
        assert code == 0, err
    written = {p.name for p in out.iterdir()}
    assert written <= set(FILES) and "summary.md" in written
    (out / "notes.txt").write_text("mine")  # now it holds one of the user's files
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert_user_error(cli(capsys, "interpret", trained, data, "-o", out), "notes.txt")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    (tmp_path / "f").write_text("mine")
    assert_user_error(cli(capsys, "interpret", trained, data, "-o", tmp_path / "f"),
                      "a file of that name exists")
    assert (tmp_path / "f").read_text() == "mine"


def test_the_python_api_refuses_the_users_folder_too(trained, tables, tmp_path):
    from vaekit.analysis.findings import interpret

    result = interpret(vaekit.load(trained), pd.read_csv(tables / "digits.csv", index_col=0))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files vaekit did not write there \(a.txt\)"):
        result.write(tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["a.txt"]


def _no_write_access(monkeypatch):
    """Root may write anywhere: fake os.access saying no folder is writable."""
    import vaekit.atomic
    import vaekit.data.writers

    real = os.access
    for module in (vaekit.atomic, vaekit.data.writers):
        monkeypatch.setattr(module.os, "access",
                            lambda path, mode: mode != os.W_OK and real(path, mode))


def test_read_only_output_folders_are_refused_before_any_work(trained, tables, tmp_path,
                                                               capsys, monkeypatch):
    data = tables / "digits.csv"
    (tmp_path / "old").mkdir()
    _no_write_access(monkeypatch)
    for args in (["interpret", trained, data, "-o", tmp_path / "i"],
                 ["encode", trained, data, "-o", tmp_path / "z.tsv"],
                 ["report", trained, data, "-o", tmp_path / "r.html"],
                 ["plot", "training", trained, "-o", tmp_path / "c.png"],
                 ["generate", trained, "-o", tmp_path / "g.tsv"]):
        assert_user_error(cli(capsys, *args), "is not writable")
    assert_user_error(cli(capsys, "interpret", trained, data, "-o", tmp_path / "old"),
                      "cannot replace the folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_output_names_are_checked_against_the_file_systems_limit(tmp_path):
    from vaekit.data.writers import (
        TEMP_NAME_BYTES,
        check_output,
        check_output_name,
        write_table,
    )

    limit = os.pathconf(tmp_path, "PC_NAME_MAX") - TEMP_NAME_BYTES
    longest = tmp_path / ("x" * (limit - 4) + ".tsv")
    check_output(longest)
    # the longest name allowed can really be written atomically, through its temporary name
    write_table(pd.DataFrame({"a": [1.0]}), longest)
    assert longest.read_text() == "\ta\n0\t1.0\n"
    with pytest.raises(ValueError, match=f"is {limit + 1} bytes long .* at most {limit} bytes"):
        check_output(tmp_path / ("x" * (limit - 3) + ".tsv"))
    for name in ("", ".", "..", "/", "a/.."):
        with pytest.raises(ValueError, match="names an existing folder"):
            check_output_name(name)
    with pytest.raises(ValueError, match="bytes long"):  # a folder on the way, too long
        check_output_name(tmp_path / ("y" * 300) / "z.tsv")
