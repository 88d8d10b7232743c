"""A small Transformer encoder for a masked-language-model objective: the model,
its masking and padding, and its checkpoint files.

nanoGPT form: one file of small `nn.Module`s and a `@dataclass` config.
Token embedding + sinusoidal positional encoding (or RoPE), pre-LayerNorm
blocks of multi-head scaled dot-product self-attention and a ReLU feed-forward
layer, each wrapped in a residual connection; the output layer shares the token
embedding matrix.

Vocabulary: the corpus words (after `min_count` / `max_vocab`) plus
``[PAD] [UNK] [MASK]`` at ids 0, 1, 2. Masking (`mask_tokens`): 15% of real
tokens are chosen, 80% of those become [MASK], 10% a random word, 10% stay; the
loss is the cross-entropy on the chosen positions only.

Checkpoints are plain dicts (config, vocab, state_dicts, step, RNG states)
written with `torch.save` and read only through `load_checkpoint`
(`torch.load(weights_only=True)`: no pickled code is ever run). The training
checkpoints of `embeddings.transformer_train` hold such a dict (`checkpoint_bytes`)
in the shared epoch checkpoint directories of `embeddings.training.Checkpoints`.

Only what is needed to *run* a trained encoder lives here, so
`embeddings.encoders.TransformerEncoder` can load one without the training loop;
training is `embeddings.transformer_train`.
"""
from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .atomic import atomic_write

PAD, UNK, MASK = "[PAD]", "[UNK]", "[MASK]"
SPECIALS = (PAD, UNK, MASK)
PAD_ID, UNK_ID, MASK_ID = 0, 1, 2
N_SPECIAL = len(SPECIALS)
IGNORE = -100
CHECKPOINT_FORMAT = 1


@dataclass
class TransformerConfig:
    """Shape of the encoder."""

    vocab_size: int = 10_000
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 512
    max_len: int = 128
    dropout: float = 0.1
    positional: str = "sinusoidal"  # or "rope"

    def validate(self) -> "TransformerConfig":
        """Raise ValueError naming the first bad value."""
        for name in ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.vocab_size <= N_SPECIAL:
            raise ValueError(f"vocab_size must exceed the {N_SPECIAL} special tokens, got {self.vocab_size}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.positional == "rope" and (self.d_model // self.n_heads) % 2:
            raise ValueError("RoPE needs an even head size (d_model / n_heads)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.positional not in ("sinusoidal", "rope"):
            raise ValueError(f"positional must be 'sinusoidal' or 'rope', got {self.positional!r}")
        return self


def sinusoidal_encoding(max_len: int, d_model: int) -> torch.Tensor:
    """PE(i, 2j) = sin(i / 10000^(2j/d)), PE(i, 2j+1) = cos(i / 10000^(2j/d)); (max_len, d)."""
    position = torch.arange(max_len, dtype=torch.float64)[:, None]            # (T, 1)
    freq = torch.pow(10000.0, -torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)  # (d/2,)
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq[: d_model // 2])
    return pe.float()


def rope_tables(max_len: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angles i / 10000^(2j/h); each (max_len, head_dim/2)."""
    freq = torch.pow(10000.0, -torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(max_len, dtype=torch.float64)[:, None] * freq       # (T, h/2)
    return torch.cos(angles).float(), torch.sin(angles).float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (even, odd) pair of x (B, H, T, h) by its position's angle."""
    T = x.shape[-2]
    cos, sin = cos[:T], sin[:T]                                               # (T, h/2)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


class SelfAttention(nn.Module):
    """Multi-head softmax(QK^T / sqrt(d_k)) V over the real (non-padding) keys."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.d_model // config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)
        self.rope = config.positional == "rope"
        if self.rope:
            cos, sin = rope_tables(config.max_len, self.head_dim)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)                                 # 3 x (B, T, d)
        q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))  # (B, H, T, h)
        if self.rope:
            q = apply_rope(q, self.rope_cos, self.rope_sin)
            k = apply_rope(k, self.rope_cos, self.rope_sin)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, T), True = attend
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, H, T, h)
        y = y.transpose(1, 2).reshape(B, T, d)
        return self.resid_dropout(self.proj(y))


class FeedForward(nn.Module):
    """W2 ReLU(W1 x + b1) + b2."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.d_ff)
        self.proj = nn.Linear(config.d_ff, config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.relu(self.fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm residual block: x + attn(ln(x)), then x + ff(ln(x))."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = SelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.ff = FeedForward(config)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), key_mask)
        return x + self.ff(self.ln2(x))


class TransformerEncoderLM(nn.Module):
    """The encoder with a tied output layer for masked-token prediction."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config.validate()
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model, padding_idx=PAD_ID)
        if config.positional == "sinusoidal":
            self.register_buffer("pos_enc", sinusoidal_encoding(config.max_len, config.d_model), persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.out_bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            # std d^-1/2: after the sqrt(d) scaling tokens weigh as much as the positional code.
            nn.init.normal_(module.weight, std=module.embedding_dim ** -0.5)
            with torch.no_grad():
                module.weight[PAD_ID].zero_()

    def hidden_states(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The output of every block after the final LayerNorm: n_layers x (B, T, d)."""
        B, T = ids.shape
        if T > self.config.max_len:
            raise ValueError(f"sequence length {T} exceeds max_len {self.config.max_len}")
        key_mask = None if attention_mask is None else attention_mask.bool()  # (B, T)
        x = self.tok_emb(ids) * math.sqrt(self.config.d_model)               # (B, T, d)
        if self.config.positional == "sinusoidal":
            x = x + self.pos_enc[:T]
        x = self.drop(x)
        states = []
        for block in self.blocks:
            x = block(x, key_mask)
            states.append(self.ln_f(x))
        return states

    def forward(
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Without targets: logits (B, T, V), loss None. With targets (B, T; IGNORE = not
        predicted): logits (M, V) of the M target positions only, and their mean cross-entropy."""
        h = self.hidden_states(ids, attention_mask)[-1]                      # (B, T, d)
        if targets is None:
            return self._logits(h), None
        chosen = targets != IGNORE                                           # (B, T)
        logits = self._logits(h[chosen])                                     # (M, V)
        loss = F.cross_entropy(logits, targets[chosen]) if logits.shape[0] else logits.sum()
        return logits, loss

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.tok_emb.weight.T + self.out_bias                     # (..., V)


# -- masking ----------------------------------------------------------------------
def mask_tokens(
    ids: torch.Tensor, attention_mask: torch.Tensor, vocab_size: int, generator: torch.Generator,
    prob: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: choose `prob` of the real tokens; 80% -> [MASK], 10% -> a random
    word, 10% unchanged. Returns (inputs, targets) with targets IGNORE where not chosen."""
    real = attention_mask.bool() & (ids != PAD_ID)
    chosen = (torch.rand(ids.shape, generator=generator) < prob) & real
    if not chosen.any() and real.any():  # at least one prediction per batch
        first = real.flatten().nonzero()[0, 0]
        chosen.view(-1)[first] = True
    action = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    to_mask = chosen & (action < 0.8)
    to_random = chosen & (action >= 0.8) & (action < 0.9)
    inputs[to_mask] = MASK_ID
    random_words = torch.randint(N_SPECIAL, vocab_size, ids.shape, generator=generator)
    inputs[to_random] = random_words[to_random]
    targets = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    return inputs, targets


def pad_batch(seqs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D id tensors with [PAD]: ids (B, T) and attention mask (B, T)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), PAD_ID, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.bool)
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = s
        mask[b, : len(s)] = True
    return ids, mask


# -- checkpoints --------------------------------------------------------------------
def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The one loader of checkpoint files: `torch.load(weights_only=True)`, checked to be ours."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint not found: {path}") from None
    except Exception as exc:  # truncated, corrupt, or holding forbidden objects
        raise ValueError(f"{path}: unreadable checkpoint ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "model" not in ckpt:
        raise ValueError(f"{path}: not a wordspace transformer checkpoint")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> TransformerEncoderLM:
    """Rebuild the model of a loaded checkpoint dict."""
    model = TransformerEncoderLM(TransformerConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model


def save_checkpoint(path: Path, obj: dict[str, Any]) -> None:
    """Write a checkpoint dict with `torch.save`, atomically."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def checkpoint_bytes(obj: dict[str, Any]) -> bytes:
    """A checkpoint dict as `torch.save` writes it (for a checkpoint directory that hashes its files)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_encoder_checkpoint(path: Path, model: TransformerEncoderLM, words: Sequence[str],
                            counts: Sequence[int]) -> None:
    """Write the inference-only checkpoint (no optimizer) stored in a model's `encoder/`."""
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "config": asdict(model.config),
                           "vocab": {"words": list(words), "counts": [int(c) for c in counts]},
                           "model": model.state_dict()})
