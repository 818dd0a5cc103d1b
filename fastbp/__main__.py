"""``python -m fastbp``: the ``fastbp`` command line (see :mod:`fastbp.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
