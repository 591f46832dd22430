"""Tokenizers with a chat template: a byte-level one written here (tiny) and SmolLM2's
byte-level BPE rebuilt with ``tokenizers`` from the GGUF's vocabulary and merges (smol)."""

from __future__ import annotations

import re
from typing import Dict, List, Sequence

from jinja2.sandbox import ImmutableSandboxedEnvironment

# ChatML, as SmolLM2's GGUF carries it, minus its default "SmolLM" system prompt.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ChatTokenizer:
    """encode/decode plus the model's chat template (rendered like transformers does)."""

    def __init__(self, chat_template: str, eos_ids: Sequence[int], vocab_size: int):
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        self._template = env.from_string(chat_template)
        self.eos_ids = tuple(eos_ids)
        self.vocab_size = vocab_size

    def render(self, messages: List[Dict[str, str]], add_generation_prompt: bool = False) -> str:
        return self._template.render(messages=messages, add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> List[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError


class ByteTokenizer(ChatTokenizer):
    """UTF-8 bytes are ids 0..255; special tokens follow (written literally in text)."""

    SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>")

    def __init__(self):
        self.special_ids = {tok: 256 + i for i, tok in enumerate(self.SPECIALS)}
        super().__init__(CHATML_TEMPLATE, eos_ids=(self.special_ids["<|im_end|>"],
                                                   self.special_ids["<|endoftext|>"]),
                         vocab_size=256 + len(self.SPECIALS))
        self._split = re.compile("(" + "|".join(map(re.escape, self.SPECIALS)) + ")")

    def encode(self, text: str) -> List[int]:
        ids: List[int] = []
        for piece in self._split.split(text):
            ids += [self.special_ids[piece]] if piece in self.special_ids else list(piece.encode())
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


class BPETokenizer(ChatTokenizer):
    """SmolLM2's tokenizer from GGUF data: byte-level BPE, digits split one by one, the
    control tokens as special tokens, no BOS (reproduces transformers' ids)."""

    CONTROL = 3  # GGUF token type of control (special) tokens

    def __init__(self, tokens: Sequence[str], merges: Sequence[str], token_type: Sequence[int],
                 eos_id: int, chat_template: str):
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

        super().__init__(chat_template, eos_ids=(eos_id,), vocab_size=len(tokens))
        bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                         merges=[tuple(m.split(" ", 1)) for m in merges])
        self._tok = Tokenizer(bpe)
        self._tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
        self._tok.decoder = decoders.ByteLevel()
        self._tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                      for t, kind in zip(tokens, token_type) if kind == self.CONTROL])

    def encode(self, text: str) -> List[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=True)


def build_tokenizer(weights: str) -> ChatTokenizer:
    """The tokenizer that belongs to a decoder's weights (``DecoderConfig.weights``)."""
    if weights == "smollm2_gguf":
        from .smollm2 import tokenizer_data
        return BPETokenizer(**tokenizer_data())
    return ByteTokenizer()
