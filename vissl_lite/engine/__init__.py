"""Engines by engine_name: train (the training loop) and explain (inspect, don't train)."""


def run_engine(cfg, inferred, run_dir: str, on_lock=None):
    """`on_lock()` runs once the main process owns the run directory (train holds a lock on it;
    explain, which only writes its report, owns it at once)."""
    if cfg.engine_name == "explain":
        from .explain import explain

        if on_lock is not None:
            on_lock()
        return explain(cfg, inferred, run_dir)
    from .train import train

    return train(cfg, inferred, run_dir, on_lock)
