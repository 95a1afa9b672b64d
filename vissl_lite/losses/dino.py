"""DINO's self-distillation loss (Caron et al. 2021) and the update of its center.

The student sees n crops of every image, the teacher the first G (the global crops). With
outputs [B, K] per crop, s_v for the student's crop v and t_i for the teacher's crop i:

    q_i      = softmax((t_i - center) / teacher_temp)          centred, sharpened, no gradient
    log p_v  = log_softmax(s_v / student_temp)
    loss     = mean over the G (n - 1) pairs (i, v) with v != i of  mean_b  -sum_k q_i[b, k] log p_v[b, k]

(the pair v = i, the same view on both sides, is skipped). E.g. 2 global + 8 local crops give
2 x 9 = 18 pairs. The center then follows the teacher outputs of the whole (global) batch:

    center <- m center + (1 - m) mean_b t        over every teacher output of every rank
"""

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn


class DINOLoss(nn.Module):
    """Called as loss(student_out, teacher_out, center, teacher_temp): student_out [n B, K] and
    teacher_out [G B, K] in crop order (all images' crop 0, then crop 1, ...), center [1, K]."""

    def __init__(self, student_temp: float = 0.1, num_teacher_crops: int = 2):
        super().__init__()
        self.student_temp, self.num_teacher_crops = student_temp, num_teacher_crops

    def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor, center: torch.Tensor,
                teacher_temp: float) -> torch.Tensor:
        g = self.num_teacher_crops
        b = teacher_out.shape[0] // g
        n = student_out.shape[0] // b
        if n <= 1 or n * b != student_out.shape[0] or g * b != teacher_out.shape[0] or g > n:
            raise ValueError(f"expected {g} teacher crops among n > 1 student crops of one batch; got "
                             f"{tuple(teacher_out.shape)} teacher and {tuple(student_out.shape)} student outputs")
        q = F.softmax((teacher_out.detach().float() - center) / teacher_temp, dim=-1).reshape(g, b, -1)
        log_p = F.log_softmax(student_out.float() / self.student_temp, dim=-1).reshape(n, b, -1)
        pair_means = -torch.einsum("ibk,vbk->iv", q, log_p) / b  # [g, n]: mean over the batch per pair
        same_view = torch.eye(g, n, dtype=torch.bool, device=pair_means.device)
        return pair_means[~same_view].mean()


@torch.no_grad()
def updated_center(center: torch.Tensor, teacher_out: torch.Tensor, momentum: float,
                   all_reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """m center + (1 - m) mean of teacher_out's rows; with `all_reduce` (a sum over ranks) the
    mean is over every rank's rows, so N processes of B rows update as one of N B rows."""
    t = teacher_out.detach().float()
    sums = torch.cat([t.sum(0), t.new_tensor([t.shape[0]])])  # one collective for sum and count
    if all_reduce is not None:
        sums = all_reduce(sums)
    return center * momentum + (sums[:-1] / sums[-1]).unsqueeze(0) * (1 - momentum)
