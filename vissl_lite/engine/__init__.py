"""Engines by engine_name: train (the training loop), explain (inspect, don't train),
extract_features (write a trunk's features for downstream code) and augmentations (write the
training views of a few images)."""


def run_engine(cfg, inferred, run_dir: str, on_lock=None):
    """`on_lock()` runs once the main process owns the run directory (train holds a lock on it;
    explain, which only writes its report, owns it at once)."""
    if cfg.engine_name == "explain":
        from .explain import explain

        if on_lock is not None:
            on_lock()
        return explain(cfg, inferred, run_dir)
    if cfg.engine_name == "augmentations":
        from .augmentations import augmentations

        return augmentations(cfg, run_dir, on_lock)
    if cfg.engine_name == "extract_features":
        from .extract_features import extract_features

        return extract_features(cfg, inferred, run_dir)  # in a training run's directory: its .hydra/ kept
    from .train import train

    return train(cfg, inferred, run_dir, on_lock)
