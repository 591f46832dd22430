"""Recovery data: the expert is pushed off its lane's center now and then and steers back.

An expert that always drives on the lane center shows a learned driver no state off the
center, and so nothing about how to leave one; in closed loop a small drift then builds up
(compounding error). With a ``LateralPerturbation`` the collector makes MetaDrive's expert
hold a lateral offset (``offset_m``, either side, from its lane's center) for ``hold_s``,
then releases it: the expert steers back with its own controller. Between two such windows
it drives unperturbed for ``gap_s`` (also before the first).

Only the expert's way back is a training target: data.samples marks every sample whose
labels (the 3 s future and the 20 m path) were driven under an offset as invalid and writes
no QA pair for it, so the offset states appear as inputs (history, current pose) but the
swerve into them never as a target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np


@dataclass(frozen=True)
class LateralPerturbation:
    """When and how far the expert is pushed off its lane's center (ranges drawn uniformly)."""

    # 0.5-1.5 m: off the center but inside a 3.5 m lane (the car's center stays in its lane,
    # so MetaDrive's expert does not adopt the neighbor lane as its own); at 1.5 m toward the
    # innermost lane's left edge the car is 0.7 m over the center line.
    offset_m: Tuple[float, float] = (0.5, 1.5)
    # MetaDrive's IDM lateral controller reaches an offset in about 2.5 s (and returns in
    # about as long); shorter holds leave the car on its way out.
    hold_s: Tuple[float, float] = (1.5, 3.0)
    # Unperturbed driving after each release: the samples from the release to 3 s before the
    # next window have an unperturbed future, so these are the recovery samples.
    gap_s: Tuple[float, float] = (5.0, 9.0)

    def __post_init__(self) -> None:
        for name in ("offset_m", "hold_s", "gap_s"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"LateralPerturbation.{name} must be 0 <= low <= high, got {(lo, hi)}")
        if self.hold_s[1] <= 0 or self.gap_s[1] <= 0:
            raise ValueError("LateralPerturbation needs hold_s and gap_s above 0")

    def schedule(self, seed: int, num_frames: int, dt_s: float) -> np.ndarray:
        """[num_frames] float64: the offset left of the lane center [m] (right when negative)
        the expert keeps with the action after each frame; 0 where it drives on its own.
        Deterministic per seed."""
        rng = np.random.default_rng([int(seed), 0x0FF5E7])
        offsets = np.zeros(int(num_frames), dtype=np.float64)
        t = rng.uniform(*self.gap_s)
        while True:
            start = int(round(t / dt_s))
            if start >= num_frames:
                return offsets
            hold = rng.uniform(*self.hold_s)
            offsets[start:int(round((t + hold) / dt_s))] = rng.choice((-1.0, 1.0)) * rng.uniform(*self.offset_m)
            t += hold + rng.uniform(*self.gap_s)


__all__ = ["LateralPerturbation"]
