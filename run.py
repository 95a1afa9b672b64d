#!/usr/bin/env python
"""Entry point: compose the config with Hydra, validate it, run the chosen engine.

    python run.py config=pretrain/simclr/simclr_digits OPTIMIZER.name=sgd
    python run.py engine_name=explain          # inspect groups and schedules, don't train
"""

from vissl_lite.cli import main

if __name__ == "__main__":
    main()
