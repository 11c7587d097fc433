"""``python -m vaekit``: the command line, also as ``torchrun ... -m vaekit train ...``."""

from vaekit.cli import main

if __name__ == "__main__":
    main()
