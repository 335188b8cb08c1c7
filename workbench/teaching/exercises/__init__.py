"""One module of checkers per notebook: ``nbNN.py`` registers the exercises ``"NN.k"`` of
``notebooks/NN-*.ipynb`` with ``workbench.teaching.checker.exercise``. Imported on demand by
``workbench.teaching.check``, so a notebook pays only for its own checkers."""

NOTEBOOKS = ("01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13",
             "14", "15", "16", "17")
