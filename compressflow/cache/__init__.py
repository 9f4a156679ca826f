"""The cache: one backend contract, a local folder and an fsspec store, manifests, locks, refs."""
