"""Engines by engine_name: train (the training loop) and explain (inspect, don't train)."""


def run_engine(cfg, inferred, run_dir: str):
    if cfg.engine_name == "explain":
        from .explain import explain

        return explain(cfg, inferred, run_dir)
    from .train import train

    return train(cfg, inferred, run_dir)
