"""Plan: everything one Action-Expert pass outputs, with argmax/confidence helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from automot_ros.data.decisions import DECISION_HORIZONS_S, LATERAL_NAMES, LONGITUDINAL_NAMES


@dataclass
class Plan:
    """Batched AE outputs (ego frame: x forward, y left, meters).

    lateral_logits [B, 3, 5] and longitudinal_logits [B, 3, 4]: decisions for now, +1 s, +2 s.
    path [B, 20, 2]: points about 1 m apart.  waypoints [B, 6, 2]: 0.5 s apart.
    speed [B, 3]: auxiliary speed head.
    waypoint_modes [B, M, 6, 2] and mode_logits [B, M]: every waypoint candidate and its
    score, of which ``waypoints`` is the best-scored (training only: ``ActionExpert.forward``
    with ``all_modes``).
    """

    lateral_logits: torch.Tensor
    longitudinal_logits: torch.Tensor
    path: torch.Tensor
    waypoints: torch.Tensor
    speed: torch.Tensor
    waypoint_modes: Optional[torch.Tensor] = None
    mode_logits: Optional[torch.Tensor] = None

    @property
    def lateral(self) -> torch.Tensor:
        """[B, 3] class indices (LATERAL_NAMES / MetaAction.LAT_*)."""
        return self.lateral_logits.argmax(-1)

    @property
    def longitudinal(self) -> torch.Tensor:
        """[B, 3] class indices (LONGITUDINAL_NAMES / MetaAction.LON_*)."""
        return self.longitudinal_logits.argmax(-1)

    @property
    def confidence(self) -> torch.Tensor:
        """[B, 3] probability of the chosen (lateral, longitudinal) pair: the two heads are
        independent softmaxes, so it is the product of their maxima."""
        lat = self.lateral_logits.softmax(-1).amax(-1)
        lon = self.longitudinal_logits.softmax(-1).amax(-1)
        return lat * lon

    def decisions(self, index: int = 0):
        """[(horizon_s, lateral name, longitudinal name, confidence)] for batch item ``index``."""
        lat, lon, conf = self.lateral[index], self.longitudinal[index], self.confidence[index]
        return [(h, LATERAL_NAMES[int(a)], LONGITUDINAL_NAMES[int(o)], float(c))
                for h, a, o, c in zip(DECISION_HORIZONS_S, lat, lon, conf)]
