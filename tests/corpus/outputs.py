"""Bad outputs: names that are no new file, too long, in a missing folder, a folder where a
file goes and a file where a folder goes, the user's own folder, a wrong suffix; and an
existing output that must survive a failing run byte for byte."""

from __future__ import annotations

from collections.abc import Callable

from corpus import Case, Kit

LONG = "x" * 300  # longer than any file system's name limit (255 bytes)


def _data(kit: Kit) -> list:
    return [kit.model, kit.table]


# How each command that writes a file is called, OUT last: (name, args before -o, suffix).
FILE_COMMANDS: dict[str, tuple[Callable[[Kit], list], str]] = {
    "encode": (lambda k: ["encode", *_data(k)], ".tsv"),
    "reconstruct": (lambda k: ["reconstruct", *_data(k)], ".csv"),
    "generate": (lambda k: ["generate", k.model], ".tsv"),
    "report": (lambda k: ["report", *_data(k), "-k", "0"], ".html"),
    "impute": (lambda k: ["impute", *_data(k)], ".tsv"),
    "score": (lambda k: ["score", *_data(k)], ".tsv"),
    "interpolate": (lambda k: ["interpolate", *_data(k), "--from", "s0", "--to", "s1"], ".tsv"),
    "traverse": (lambda k: ["traverse", k.model], ".tsv"),
    "plot-latent": (lambda k: ["plot", "latent", *_data(k)], ".png"),
    "plot-training": (lambda k: ["plot", "training", k.model], ".png"),
    "plot-reconstructions": (lambda k: ["plot", "reconstructions", *_data(k)], ".png"),
}
# Commands that write a folder, and the options that keep them fast.
FOLDER_COMMANDS: dict[str, Callable[[Kit], list]] = {
    "interpret": lambda k: ["interpret", *_data(k)],
    "train": lambda k: ["train", k.table, "--epochs", "1", "-q"],
    "demo": lambda k: ["demo", "--epochs", "1", "-q"],
}
ALL = {**{n: c for n, (c, _) in FILE_COMMANDS.items()}, **FOLDER_COMMANDS}


def _with(command: Callable[[Kit], list], out: Callable[[Kit], object]) -> Callable[[Kit], list]:
    return lambda k: [*command(k), "-o", out(k)]


def _folder(kit: Kit, name: str) -> object:
    (kit.tmp / name).mkdir()
    return kit.tmp / name


def _file(kit: Kit, name: str) -> object:
    return kit.write(name, "the user's own file\n")


def _user_folder(kit: Kit) -> object:
    kit.write("mine/notes.txt", "the user's own notes\n")
    return kit.tmp / "mine"


def _names(kinds: dict[str, Callable[[Kit], object]], match: str, commands: dict) -> list[Case]:
    return [
        Case(f"outputs/{name}-{kind}", _with(command, out), match=match)
        for kind, out in kinds.items()
        for name, command in commands.items()
    ]


CASES: list[Case] = [
    # names that name no new file or folder: '' is '.', and '/' is the root
    *_names({"empty": lambda k: "", "dot": lambda k: ".", "root": lambda k: "/"},
            "names an existing folder", {n: ALL[n] for n in
                                         ("encode", "interpret", "train", "demo", "report")}),
    *_names({"dotdot": lambda k: k.tmp / ".."}, "names an existing folder",
            {n: ALL[n] for n in ("generate", "interpret")}),
    # names longer than the file system allows (ENAMETOOLONG), for a file and a folder
    *[Case(f"outputs/{name}-name-too-long",
           _with(command, lambda k, s=suffix: k.tmp / f"{LONG}{s}"), match="bytes long")
      for name, (command, suffix) in FILE_COMMANDS.items()],
    *[Case(f"outputs/{name}-name-too-long", _with(command, lambda k: k.tmp / LONG),
           match="bytes long") for name, command in FOLDER_COMMANDS.items()],
    Case("outputs/encode-folder-name-too-long",
         _with(ALL["encode"], lambda k: k.tmp / LONG / "z.tsv"), match="bytes long"),
    # a missing parent folder
    *[Case(f"outputs/{name}-missing-folder",
           _with(ALL[name], lambda k, s=suffix: k.tmp / "no" / f"out{s}"),
           match="does not exist")
      for name, suffix in (("encode", ".tsv"), ("generate", ".tsv"), ("report", ".html"),
                           ("plot-training", ".png"), ("interpret", ""), ("train", ""),
                           ("demo", ""))],
    # the parent is a file
    Case("outputs/encode-parent-is-a-file",
         _with(ALL["encode"], lambda k: _file(k, "f") / "z.tsv"), match="does not exist"),
    # a folder where a file goes
    *[Case(f"outputs/{name}-folder-for-a-file",
           _with(ALL[name], lambda k, s=suffix: _folder(k, f"out{s}")), match="is a folder")
      for name, suffix in (("encode", ".tsv"), ("reconstruct", ".csv"), ("generate", ".tsv"),
                           ("report", ".html"), ("impute", ".tsv"), ("plot-latent", ".png"),
                           ("plot-training", ".png"), ("traverse", ".tsv"))],
    # a file where a folder goes, and a folder of the user's own files: refused, kept
    *[Case(f"outputs/{name}-file-for-a-folder", _with(command, lambda k: _file(k, "out")),
           match="a file of that name exists") for name, command in FOLDER_COMMANDS.items()],
    *[Case(f"outputs/{name}-user-folder", _with(command, _user_folder), match="notes.txt")
      for name, command in FOLDER_COMMANDS.items()],
    # wrong or missing suffixes
    Case("outputs/encode-xlsx", _with(ALL["encode"], lambda k: k.tmp / "z.xlsx"),
         match="cannot tell the table format"),
    Case("outputs/encode-no-suffix", _with(ALL["encode"], lambda k: k.tmp / "z"),
         match="cannot tell the table format"),
    Case("outputs/report-not-html", _with(ALL["report"], lambda k: k.tmp / "r.pdf"),
         match=".html"),
    Case("outputs/plot-training-gif", _with(ALL["plot-training"], lambda k: k.tmp / "c.gif"),
         match="figure format"),
    Case("outputs/plot-latent-no-suffix", _with(ALL["plot-latent"], lambda k: k.tmp / "map"),
         match="figure format"),
    Case("outputs/encode-h5ad-of-a-table", _with(ALL["encode"], lambda k: k.tmp / "z.h5ad"),
         match="cannot tell the table format"),
    # an existing output survives a failing run byte for byte (the harness compares)
    Case("outputs/encode-existing-survives-bad-data",
         lambda k: ["encode", k.model, k.write("bad.csv", "sample,g0\ns0,x\n"),
                    "-o", _file(k, "z.tsv")], match="bad.csv"),
    Case("outputs/interpret-existing-survives-bad-data",
         lambda k: ["interpret", k.model, k.write("bad.csv", "sample,g0\ns0,x\n"),
                    "-o", _folder(k, "interpretation")], match="bad.csv"),
    Case("outputs/report-existing-survives-bad-flag",
         lambda k: ["report", *_data(k), "-o", _file(k, "r.html"), "-k", "-1"], match="-k"),
    # what must succeed
    Case("outputs/encode-ok", _with(ALL["encode"], lambda k: k.tmp / "z.tsv"), code=0),
    Case("outputs/interpret-ok", _with(ALL["interpret"], lambda k: k.tmp / "i"), code=0),
    Case("outputs/interpret-into-an-empty-folder",
         _with(ALL["interpret"], lambda k: _folder(k, "empty")), code=0),
    Case("outputs/generate-unicode-name",
         _with(ALL["generate"], lambda k: k.tmp / "échantillons ☃.tsv"), code=0),
    Case("outputs/plot-training-svg", _with(ALL["plot-training"], lambda k: k.tmp / "c.svg"),
         code=0),
]
