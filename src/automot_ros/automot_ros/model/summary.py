"""Parameter counts of a model config, built on the meta device (no memory, no weights).

    python -m automot_ros.model.summary automot-b2d
"""

from __future__ import annotations

import argparse
import json
from typing import Dict

import torch

from .automot import AutoMoT
from .config import load_model_config


def parameter_counts(config) -> Dict[str, int]:
    """Counts per part: UE (vision, projector, decoder, answer adapter: 0 without one), AE
    (layers = the per-layer expert weights + final norm; io = scene encoder, input
    embeddings, queries, heads)."""
    cfg = load_model_config(config)
    with torch.device("meta"):
        model = AutoMoT(cfg, load_pretrained=False)

    def count(module) -> int:
        return sum(p.numel() for p in module.parameters())

    ae_layers = count(model.ae.blocks) + count(model.ae.norm)
    return {"ue_vision": count(model.frame_encoder), "ue_projector": count(model.projector),
            "ue_decoder": count(model.decoder),
            "ue_answer_adapter": count(model.answer_adapter) if model.answer_adapter is not None else 0,
            "ae_layers": ae_layers,
            "ae_io": count(model.ae) - ae_layers, "ae_total": count(model.ae),
            "total": count(model)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="automot-b2d", help="config name or YAML path")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    counts = parameter_counts(args.config)
    if args.json:
        print(json.dumps(counts, indent=2))
        return
    for name, n in counts.items():
        print(f"{name:>17}  {n:>15,d}  ({n / 1e9:.3f} B)")


if __name__ == "__main__":
    main()
