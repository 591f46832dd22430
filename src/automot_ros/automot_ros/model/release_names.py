"""Map between the official release's parameter names (Qwen3-style, ``*_mot_gen`` for the
Action Expert) and ours, so release-shaped checkpoints load strictly into ``AutoMoT``.

| release (per layer N: ``model.layers.N.``)        | ours                                |
| ------------------------------------------------- | ----------------------------------- |
| model.embed_tokens / model.norm / lm_head          | decoder.embed_tokens / norm / lm_head |
| input_layernorm / post_attention_layernorm         | decoder.blocks.N.input_norm / post_norm |
| self_attn.{q,k,v,o}_proj, self_attn.{q,k}_norm     | decoder.blocks.N.{q,k,v,o}_proj, {q,k}_norm |
| mlp.{gate,up,down}_proj                            | decoder.blocks.N.mlp.{gate,up,down}_proj |
| input_layernorm_mot_gen / post_attention_layernorm_mot_gen | ae.blocks.N.input_norm / post_norm |
| self_attn.{q,k,v,o}_proj_mot_gen, {q,k}_norm_mot_gen | ae.blocks.N.{q,k,v,o}_proj, {q,k}_norm |
| mlp_mot_gen.{gate,up,down}_proj                    | ae.blocks.N.mlp.{gate,up,down}_proj |
| model.norm_mot_gen                                 | ae.norm                              |

All weights keep the nn.Linear (out, in) layout and the rotate-half q/k row order (no
permutation, unlike GGUF). Parts the release builds differently from this project (its
Qwen3-VL vision tower, BEV scene encoder, AE input embeddings and output heads) have no
counterpart: their tensors keep our names (``frame_encoder.``, ``projector.``, ``ae.``
outside ``ae.blocks``/``ae.norm``) and must be supplied in that naming.
"""

from __future__ import annotations

import re
from typing import Dict, List, Tuple

import torch

_BLOCK_PARTS = {  # our name inside a block -> release name inside model.layers.N (UE form)
    "input_norm": "input_layernorm", "post_norm": "post_attention_layernorm",
    "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
    "o_proj": "self_attn.o_proj", "q_norm": "self_attn.q_norm", "k_norm": "self_attn.k_norm",
    "mlp.gate_proj": "mlp.gate_proj", "mlp.up_proj": "mlp.up_proj", "mlp.down_proj": "mlp.down_proj",
}


def _ae_form(release_part: str) -> str:
    """UE release name -> the AE's: ``_mot_gen`` on the module name (``mlp`` for the MLP)."""
    if release_part.startswith("mlp."):
        return "mlp_mot_gen." + release_part[4:]
    return release_part + "_mot_gen"


def _rules() -> List[Tuple[str, str]]:
    """(our name pattern, release name pattern) pairs; ``{n}`` is the layer index."""
    rules = [("decoder.embed_tokens", "model.embed_tokens"), ("decoder.norm", "model.norm"),
             ("decoder.lm_head", "lm_head"), ("ae.norm", "model.norm_mot_gen")]
    for ours, release in _BLOCK_PARTS.items():
        rules.append((f"decoder.blocks.{{n}}.{ours}", f"model.layers.{{n}}.{release}"))
        rules.append((f"ae.blocks.{{n}}.{ours}", f"model.layers.{{n}}.{_ae_form(release)}"))
    return rules


def _compile(pattern: str) -> "re.Pattern":
    return re.compile(re.escape(pattern).replace(re.escape("{n}"), r"(?P<n>\d+)") + r"\.(?P<p>weight|bias)$")


_OURS_TO_RELEASE = [(_compile(o), r) for o, r in _rules()]
_RELEASE_TO_OURS = [(_compile(r), o) for o, r in _rules()]
_UNMAPPED_PREFIXES = ("frame_encoder.", "projector.", "ae.")


def _convert(name: str, table) -> str:
    for pattern, target in table:
        m = pattern.match(name)
        if m:
            return target.replace("{n}", m.groupdict().get("n") or "") + "." + m["p"]
    return ""


def ours_to_release(name: str) -> str:
    return _convert(name, _OURS_TO_RELEASE) or name


def release_to_ours(name: str) -> str:
    """A release tensor name -> ours; raises ValueError for a name this map does not know."""
    mapped = _convert(name, _RELEASE_TO_OURS)
    if mapped:
        return mapped
    if name.startswith(_UNMAPPED_PREFIXES) and not name.startswith(("ae.blocks.", "ae.norm.")):
        return name
    raise ValueError(f"release tensor {name!r} has no counterpart in this model")


def from_release(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A release-named state dict -> ours (names only; tensors are not copied)."""
    out = {}
    for name, tensor in state.items():
        ours = release_to_ours(name)
        if ours in out:
            raise ValueError(f"two release tensors map to {ours!r}")
        out[ours] = tensor
    return out
