"""A small Transformer encoder trained here with a masked-language-model objective.

nanoGPT form: one file of small `nn.Module`s and a `@dataclass` config.
Token embedding + sinusoidal positional encoding (or RoPE), pre-LayerNorm
blocks of multi-head scaled dot-product self-attention and a ReLU feed-forward
layer, each wrapped in a residual connection; the output layer shares the token
embedding matrix.

Vocabulary: the corpus words (after `min_count` / `max_vocab`) plus
``[PAD] [UNK] [MASK]`` at ids 0, 1, 2. Training: 15% of real tokens are chosen,
80% of those become [MASK], 10% a random word, 10% stay; the loss is the
cross-entropy on the chosen positions only. AdamW, linear warm-up then cosine
decay. Each epoch reports the training loss and, on a held-out 2% of the
windows (masked once with a fixed seed), the masked-token cross-entropy and
perplexity next to a unigram baseline's on the same positions.

Checkpoints are plain dicts (config, vocab, state_dicts, step, RNG states)
written with `torch.save` and read only through `load_checkpoint`
(`torch.load(weights_only=True)`: no pickled code is ever run).
"""
from __future__ import annotations

import math
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .atomic import atomic_write
from .corpus import PreparedCorpus

PAD, UNK, MASK = "[PAD]", "[UNK]", "[MASK]"
SPECIALS = (PAD, UNK, MASK)
PAD_ID, UNK_ID, MASK_ID = 0, 1, 2
N_SPECIAL = len(SPECIALS)
IGNORE = -100
CHECKPOINT_FORMAT = 1
_CKPT_RE = re.compile(r"epoch-(\d{4,})\.pt")


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


def _save(path: Path, obj: dict[str, Any]) -> None:
    atomic_write(path, lambda handle: torch.save(obj, handle))


def save_encoder_checkpoint(path: Path, model: TransformerEncoderLM, words: Sequence[str],
                            counts: Sequence[int]) -> None:
    """Write the inference-only checkpoint (no optimizer) stored in a model's `encoder/`."""
    _save(path, {"format": CHECKPOINT_FORMAT, "config": asdict(model.config),
                 "vocab": {"words": list(words), "counts": [int(c) for c in counts]},
                 "model": model.state_dict()})


def latest_checkpoint(directory: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest epoch checkpoint in `directory` that loads (corrupt ones are skipped)."""
    if not directory.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in directory.iterdir() if (m := _CKPT_RE.fullmatch(p.name)))
    for _epoch, path in reversed(found):
        try:
            return path, load_checkpoint(path)
        except ValueError as exc:
            print(f"warning: skipping {exc}", file=sys.stderr)
    return None


# -- the estimator ------------------------------------------------------------------
class TransformerMLM:
    """Train the encoder on a corpus (scikit-learn style: fit(corpus) -> self).

    After `fit`: `model_`, `vocab_` (words incl. specials), `counts_`, `history_`
    (one dict per epoch) and `embeddings_` (static vectors pooled over the corpus,
    or None when `max_contexts=0`)."""

    def __init__(
        self, *, d_model: int = 128, n_heads: int = 4, n_layers: int = 2, d_ff: int | None = None,
        max_len: int = 128, dropout: float = 0.1, positional: str = "sinusoidal",
        epochs: int = 3, batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 0.01,
        warmup: float = 0.05, min_count: int = 5, max_vocab: int | None = 20_000,
        holdout: float = 0.02, mask_prob: float = 0.15, random_state: int = 0,
        checkpoint_dir: str | Path | None = None, resume: bool = False,
        max_contexts: int = 100, max_tokens: int | None = None, layers: str = "last",
        progress: bool = False,
    ) -> None:
        self.d_model, self.n_heads, self.n_layers, self.d_ff = d_model, n_heads, n_layers, d_ff
        self.max_len, self.dropout, self.positional = max_len, dropout, positional
        self.epochs, self.batch_size, self.lr, self.weight_decay = epochs, batch_size, lr, weight_decay
        self.warmup, self.min_count, self.max_vocab = warmup, min_count, max_vocab
        self.holdout, self.mask_prob, self.random_state = holdout, mask_prob, random_state
        self.checkpoint_dir, self.resume = checkpoint_dir, resume
        self.max_contexts, self.max_tokens = max_contexts, max_tokens
        self.layers, self.progress = layers, progress

    def _trainer_params(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "weight_decay": self.weight_decay, "warmup": self.warmup, "min_count": self.min_count,
                "max_vocab": self.max_vocab, "holdout": self.holdout, "mask_prob": self.mask_prob,
                "random_state": self.random_state}

    def _validate(self) -> None:
        for name in ("epochs", "batch_size", "min_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.holdout < 0.5:
            raise ValueError(f"holdout must be in (0, 0.5), got {self.holdout}")
        if not 0 < self.mask_prob < 1:
            raise ValueError(f"mask_prob must be in (0, 1), got {self.mask_prob}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be in [0, 1), got {self.warmup}")
        if self.max_contexts < 0:
            raise ValueError(f"max_contexts must be >= 0, got {self.max_contexts}")

    # -- data ----------------------------------------------------------------------
    def _windows(self, corpus: PreparedCorpus, index: dict[str, int]) -> list[torch.Tensor]:
        windows = []
        for sentence in corpus.sentences():
            ids = [index.get(w, UNK_ID) for w in sentence]
            for start in range(0, len(ids), self.max_len):
                chunk = ids[start : start + self.max_len]
                if len(chunk) >= 2:
                    windows.append(torch.tensor(chunk, dtype=torch.long))
        return windows

    def fit(self, corpus: PreparedCorpus) -> "TransformerMLM":
        """Train (or resume) on `corpus`; checkpoint at each epoch end; pool static vectors."""
        self._validate()
        vocab = corpus.vocabulary(self.min_count, self.max_vocab)
        words = list(SPECIALS) + vocab.words
        config = TransformerConfig(vocab_size=len(words), d_model=self.d_model, n_heads=self.n_heads,
                                   n_layers=self.n_layers, d_ff=self.d_ff or 4 * self.d_model,
                                   max_len=self.max_len, dropout=self.dropout,
                                   positional=self.positional).validate()
        index = {w: i for i, w in enumerate(words)}
        windows = self._windows(corpus, index)
        if len(windows) < 2:
            raise ValueError("the corpus is too small: it needs at least two windows of two words")
        split = torch.Generator().manual_seed(self.random_state)
        order = torch.randperm(len(windows), generator=split).tolist()
        n_held = max(1, round(self.holdout * len(windows)))
        held = [windows[i] for i in sorted(order[:n_held])]
        train = [windows[i] for i in sorted(order[n_held:])]
        counts = torch.bincount(torch.cat(train), minlength=len(words))
        heldout = self._masked_heldout(held, len(words))
        unigram = self._unigram_ce(counts, heldout)

        torch.manual_seed(self.random_state)
        model = TransformerEncoderLM(config)
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": self.weight_decay},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=self.lr)
        steps_per_epoch = math.ceil(len(train) / self.batch_size)
        total = steps_per_epoch * self.epochs
        warm = max(1, int(self.warmup * total))

        def schedule(step: int) -> float:  # linear warm-up, cosine decay to 10%
            if step < warm:
                return (step + 1) / warm
            progress = (step - warm) / max(1, total - warm)
            return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        gen = torch.Generator().manual_seed(self.random_state + 1)
        history: list[dict[str, Any]] = []
        start_epoch, step = 0, 0
        ckpt_dir = Path(self.checkpoint_dir) if self.checkpoint_dir is not None else None
        identity = {"config": asdict(config), "trainer": self._trainer_params(), "corpus_sha256": corpus.sha256}
        if ckpt_dir is not None and self.resume:
            found = latest_checkpoint(ckpt_dir)
            if found is None and self.progress:
                print(f"no checkpoint in {ckpt_dir}: starting from scratch", file=sys.stderr)
            if found is not None:
                path, ckpt = found
                for key, value in identity.items():
                    if ckpt.get(key) != value:
                        raise ValueError(f"cannot resume from {path}: it was made with a different {key} "
                                         f"({ckpt.get(key)!r} != {value!r}); rerun without --resume")
                model.load_state_dict(ckpt["model"])
                optimizer.load_state_dict(ckpt["optimizer"])
                scheduler.load_state_dict(ckpt["scheduler"])
                gen.set_state(ckpt["rng"]["generator"])
                torch.set_rng_state(ckpt["rng"]["torch"])
                start_epoch, step, history = ckpt["epoch"], ckpt["step"], list(ckpt["history"])
                if self.progress:
                    print(f"resuming from {path} (epoch {start_epoch}, step {step})", file=sys.stderr)
        elif ckpt_dir is not None and ckpt_dir.is_dir():
            for old in ckpt_dir.iterdir():  # a fresh run: stale checkpoints must not be resumed later
                if _CKPT_RE.fullmatch(old.name):
                    old.unlink()

        from tqdm import tqdm

        for epoch in range(start_epoch, self.epochs):
            model.train()
            started = time.perf_counter()
            perm = torch.randperm(len(train), generator=gen).tolist()
            total_loss, n_batches, n_tokens = 0.0, 0, 0
            bar = tqdm(range(0, len(perm), self.batch_size), desc=f"epoch {epoch + 1}/{self.epochs}",
                       unit="batch", disable=not self.progress, leave=False)
            for b in bar:
                ids, mask = pad_batch([train[i] for i in perm[b : b + self.batch_size]])
                inputs, targets = mask_tokens(ids, mask, len(words), gen, self.mask_prob)
                _, loss = model(inputs, mask, targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                step += 1
                total_loss += loss.item()
                n_batches += 1
                n_tokens += int(mask.sum())
                if n_batches % 10 == 0:
                    rate = n_tokens / (time.perf_counter() - started)
                    bar.set_postfix(loss=f"{total_loss / n_batches:.3f}", tok_s=f"{rate:.0f}")
            bar.close()
            seconds = time.perf_counter() - started
            ce = self._heldout_ce(model, heldout)
            record = {"epoch": epoch + 1, "step": step, "train_loss": total_loss / n_batches,
                      "heldout_ce": ce, "heldout_bits": ce / math.log(2),  # ppl = e^ce = 2^bits
                      "heldout_ppl": math.exp(ce), "unigram_ppl": math.exp(unigram),
                      "train_tokens": n_tokens, "seconds": round(seconds, 2),
                      "tokens_per_second": round(n_tokens / seconds, 1)}
            history.append(record)
            if self.progress:
                print(f"epoch {epoch + 1}/{self.epochs}: train loss {record['train_loss']:.3f}, held-out "
                      f"masked ppl {record['heldout_ppl']:.1f} (unigram {record['unigram_ppl']:.1f}), "
                      f"{record['tokens_per_second']:.0f} tokens/s", file=sys.stderr)
            if ckpt_dir is not None:
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                _save(ckpt_dir / f"epoch-{epoch + 1:04d}.pt", {
                    "format": CHECKPOINT_FORMAT, **identity, "vocab": {"words": words, "counts": counts.tolist()},
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "step": step,
                    "rng": {"generator": gen.get_state(), "torch": torch.get_rng_state()}, "history": history,
                })
                for old in ckpt_dir.iterdir():  # keep the last two
                    m = _CKPT_RE.fullmatch(old.name)
                    if m and int(m.group(1)) < epoch:
                        old.unlink()
        model.eval()
        self.model_, self.vocab_, self.counts_, self.history_ = model, words, counts.tolist(), history
        self.config_ = config
        self.embeddings_ = self._pool(corpus) if self.max_contexts else None
        return self

    # -- evaluation -----------------------------------------------------------------
    def _masked_heldout(self, held: list[torch.Tensor], vocab_size: int) -> list[tuple[torch.Tensor, ...]]:
        """Held-out batches masked once with a fixed seed, so epochs compare like with like."""
        gen = torch.Generator().manual_seed(self.random_state + 2)
        batches = []
        for b in range(0, len(held), self.batch_size):
            ids, mask = pad_batch(held[b : b + self.batch_size])
            inputs, targets = mask_tokens(ids, mask, vocab_size, gen, self.mask_prob)
            batches.append((inputs, mask, targets))
        return batches

    @staticmethod
    def _unigram_ce(counts: torch.Tensor, heldout: list[tuple[torch.Tensor, ...]]) -> float:
        """Cross-entropy (nats) of add-one unigram probabilities on the held-out masked positions."""
        probs = (counts.double() + 1) / (counts.sum() + len(counts))
        targets = torch.cat([t[t != IGNORE] for _, _, t in heldout])
        return float(-torch.log(probs[targets]).mean())

    @staticmethod
    def _heldout_ce(model: TransformerEncoderLM, heldout: list[tuple[torch.Tensor, ...]]) -> float:
        """Mean masked-token cross-entropy (nats) on the held-out batches; perplexity = exp."""
        model.eval()
        total, n = 0.0, 0
        with torch.inference_mode():
            for inputs, mask, targets in heldout:
                logits, _ = model(inputs, mask, targets)
                chosen = targets[targets != IGNORE]
                total += float(F.cross_entropy(logits, chosen, reduction="sum"))
                n += len(chosen)
        return total / n

    def heldout_perplexity(self) -> tuple[float, float]:
        """(model, unigram) held-out masked-token perplexity after the last epoch."""
        last = self.history_[-1]
        return last["heldout_ppl"], last["unigram_ppl"]

    def encoder(self, source: str = "trained") -> "Any":
        """The trained model behind the contextual `Encoder` interface."""
        from .contextual import TransformerEncoder

        return TransformerEncoder(self.model_, self.vocab_, self.counts_, source)

    def _pool(self, corpus: PreparedCorpus) -> "Any":
        from .contextual import build_contextual_model

        return build_contextual_model(
            self.encoder(), corpus, min_count=self.min_count, max_vocab=self.max_vocab,
            max_contexts=self.max_contexts, max_tokens=self.max_tokens, layers=self.layers,
            seed=self.random_state, window=self.max_len,
            progress=self.progress, method="transformer",
            extra_meta={"training": {"config": asdict(self.config_), **self._trainer_params(),
                                     "history": self.history_}})
