"""Where logged scalars go: metrics.jsonl (always), TensorBoard (HOOKS.TENSORBOARD_SETUP).

A resumed run continues from its checkpoint's step: records after that step (written between
the checkpoint and a kill) are dropped first, so every step appears once.
"""

import json
import os
from pathlib import Path


def _drop_records_after(path: Path, step: int) -> None:
    """Keep the records of steps <= `step` (rewritten atomically; a torn last line goes too)."""
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("step", 0) <= step:
            kept.append(line)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    os.replace(tmp, path)


class MetricsWriter:
    def __init__(self, run_dir: Path, use_tensorboard: bool, start_step: int = 0):
        path = Path(run_dir) / "metrics.jsonl"
        if path.exists():
            _drop_records_after(path, start_step)
        self.file = open(path, "a", encoding="utf-8")
        self.tb = None
        if use_tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides events a killed run wrote after the checkpoint we resume from.
            self.tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=start_step + 1 if start_step else None)

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
