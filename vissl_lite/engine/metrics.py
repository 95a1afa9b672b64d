"""Where logged scalars go: metrics.jsonl (always), TensorBoard (HOOKS.TENSORBOARD_SETUP)."""

import json
from pathlib import Path


class MetricsWriter:
    def __init__(self, run_dir: Path, use_tensorboard: bool):
        self.file = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
        self.tb = None
        if use_tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"))

    def write(self, step: int, scalars: dict) -> None:
        self.file.write(json.dumps({"step": step, **scalars}) + "\n")
        self.file.flush()
        if self.tb is not None:
            for name, value in scalars.items():
                if isinstance(value, (int, float)) and name != "epoch":
                    self.tb.add_scalar(name, value, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()
