"""Market data: loaders that return polars frames, and the one boundary that turns a
frame into the kernels' structured arrays (``workbench.data.convert``)."""
