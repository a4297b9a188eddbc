"""`spicetool batch`: many captures through one per-capture function, on a local process pool or a Dask
cluster; outputs by content hash, a Parquet dataset of per-session and per-channel figures, an index page."""
