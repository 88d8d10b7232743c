"""Training of the MLM Transformer (`embeddings.transformer_model`) on a corpus.

`TransformerMLM` is the estimator (scikit-learn style: fit(corpus) -> self).
Training: BERT masking (`mask_tokens`), the cross-entropy on the masked
positions, AdamW, linear warm-up then cosine decay. Each epoch reports the
training loss and, on a held-out 2% of the windows (masked once with a fixed
seed), the masked-token cross-entropy and perplexity next to a unigram
baseline's on the same positions, and writes a checkpoint (the shared scheme of
`embeddings.training.Checkpoints`: `epoch-NNNN/state.pt`, a plain dict read with
`torch.load(weights_only=True)`, plus state.json) that `resume=True` continues
from. After training, static vectors are pooled from the trained encoder
(`embeddings.pooling`), on a Dask cluster with `fit(..., cluster=...)`.

Apart from the model module so that loading a trained encoder
(`embeddings.encoders`) never needs the training loop, and the loop can use
the encoder and pooling modules without an import cycle.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .cluster import using
from .corpus import PreparedCorpus
from .distributed_pooling import shared_encoder
from .encoders import ENCODER_DIR, TransformerEncoder
from .metadata import ModelMeta
from .pooling import build_contextual_model
from .training import (Checkpoint, Progress, ProgressCallback, Trainer, as_prepared, check_choice, check_int,
                       check_real, check_resumable, notify, resumed_message, training_run)
from .transformer_model import (CHECKPOINT_FORMAT, IGNORE, N_SPECIAL, SPECIALS, UNK_ID, TransformerConfig,
                                TransformerEncoderLM, checkpoint_bytes, load_checkpoint, mask_tokens, pad_batch)
from .vectors import Embeddings

#: `state["trainer"]` of a Transformer checkpoint, and its one file.
CHECKPOINT_KIND = "transformer"
STATE_FILE = "state.pt"


def _load_state(checkpoint: Checkpoint) -> dict[str, Any]:
    """The training dict of a verified checkpoint, through the one shared loader (weights only)."""
    if STATE_FILE not in checkpoint.state["files"]:
        raise ValueError(f"{checkpoint.path}: no {STATE_FILE}")
    return load_checkpoint(checkpoint.file(STATE_FILE))


class TransformerMLM(Trainer):
    """Train the encoder on a corpus (scikit-learn style: fit(corpus) -> self).

    After `fit`: `model_`, `vocab_` (words incl. specials), `counts_`, `history_`
    (one dict per epoch), `resumed_from_epoch_`, and `embeddings_` (static vectors
    pooled over the corpus, or None when `max_contexts=0`). `save` writes the
    trained encoder into the model's `encoder/`. With `fit(..., cluster=...)` the
    pooling runs on a Dask cluster (the training stays on this machine)."""

    method = "transformer"
    distributed = True
    cli_flags = {"n_heads": "--heads", "n_layers": "--layers", "d_model": "--d-model", "d_ff": "--d-ff",
                 "max_len": "--max-len", "batch_size": "--batch-size", "random_state": "--seed",
                 "layers": "--pool-layers"}

    def __init__(
        self, *, d_model: int = 128, n_heads: int = 4, n_layers: int = 2, d_ff: int | None = None,
        max_len: int = 128, dropout: float = 0.1, positional: str = "sinusoidal",
        epochs: int = 3, batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 0.01,
        warmup: float = 0.05, min_count: int = 5, max_vocab: int | None = 20_000,
        holdout: float = 0.02, mask_prob: float = 0.15, random_state: int = 0,
        max_contexts: int = 100, max_tokens: int | None = None, layers: str = "last",
    ) -> None:
        self.d_model, self.n_heads, self.n_layers, self.d_ff = d_model, n_heads, n_layers, d_ff
        self.max_len, self.dropout, self.positional = max_len, dropout, positional
        self.epochs, self.batch_size, self.lr, self.weight_decay = epochs, batch_size, lr, weight_decay
        self.warmup, self.min_count, self.max_vocab = warmup, min_count, max_vocab
        self.holdout, self.mask_prob, self.random_state = holdout, mask_prob, random_state
        self.max_contexts, self.max_tokens = max_contexts, max_tokens
        self.layers = layers

    def _trainer_params(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "weight_decay": self.weight_decay, "warmup": self.warmup, "min_count": self.min_count,
                "max_vocab": self.max_vocab, "holdout": self.holdout, "mask_prob": self.mask_prob,
                "random_state": self.random_state}

    def _config(self, vocab_size: int) -> TransformerConfig:
        return TransformerConfig(vocab_size=vocab_size, d_model=self.d_model, n_heads=self.n_heads,
                                 n_layers=self.n_layers, d_ff=self.d_ff or 4 * self.d_model, max_len=self.max_len,
                                 dropout=self.dropout, positional=self.positional).validate()

    def check_params(self) -> None:
        """Raise `ValueError` naming the first bad hyper-parameter (cheap: no corpus read)."""
        for name in ("epochs", "batch_size", "min_count", "d_model", "n_heads", "n_layers", "max_len"):
            check_int(self.label(name), getattr(self, name), 1)
        for name in ("d_ff", "max_vocab", "max_tokens"):
            if getattr(self, name) is not None:
                check_int(self.label(name), getattr(self, name), 1)
        check_real("lr", self.lr, 0.0, low_open=True)
        check_real("weight_decay", self.weight_decay, 0.0)
        check_real("holdout", self.holdout, 0.0, 0.5, low_open=True, high_open=True)
        check_real("mask_prob", self.mask_prob, 0.0, 1.0, low_open=True, high_open=True)
        check_real("warmup", self.warmup, 0.0, 1.0, high_open=True)
        check_int("max_contexts", self.max_contexts, 0)
        check_int(self.label("random_state"), self.random_state, 0, 2**63 - 2)
        check_choice(self.label("layers"), self.layers, ("last", "last4"))
        self._config(N_SPECIAL + 1)  # d_model / n_heads, dropout, positional

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

    def fit(
        self,
        corpus: "PreparedCorpus | str | os.PathLike",
        *,
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False,
        progress: ProgressCallback | None = None,
        cluster: Any = None,
    ) -> "TransformerMLM":
        """Train (or resume) on `corpus`; checkpoint at each epoch end; pool static vectors.

        Without `resume`, a checkpoint left in `checkpoint_dir` by an interrupted run
        raises `training.UnfinishedRun`. `progress` gets notes, "train" events (batches
        of the epoch), an "epoch" event per epoch and "pool" events. `cluster` (a spec,
        a `distributed.Client` or None = serial) runs the pooling on a Dask cluster; the
        trained encoder reaches its workers through a copy in `checkpoint_dir`."""
        self.check_params()
        corpus = as_prepared(corpus)
        vocab = corpus.vocabulary(self.min_count, self.max_vocab)
        words = list(SPECIALS) + vocab.words
        config = self._config(len(words))
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
            done = (step - warm) / max(1, total - warm)
            return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, done)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        gen = torch.Generator().manual_seed(self.random_state + 1)
        history: list[dict[str, Any]] = []
        start_epoch, step = 0, 0
        params = {**asdict(config), **self._trainer_params()}
        self.resumed_from_epoch_: int | None = None
        notes: list[str] = []
        with using(cluster) as client, training_run(checkpoint_dir) as checkpoints:
            if checkpoints is not None:
                found = checkpoints.start(resume, _load_state, notes, CHECKPOINT_KIND)
                if found is not None:
                    checkpoint, ckpt = found
                    check_resumable(checkpoint, corpus.sha256, params, self.label)
                    model.load_state_dict(ckpt["model"])
                    optimizer.load_state_dict(ckpt["optimizer"])
                    scheduler.load_state_dict(ckpt["scheduler"])
                    gen.set_state(ckpt["rng"]["generator"])
                    torch.set_rng_state(ckpt["rng"]["torch"])
                    start_epoch, step, history = ckpt["epoch"], ckpt["step"], list(ckpt["history"])
                    self.resumed_from_epoch_ = start_epoch
                    notes.append(resumed_message(self.method, checkpoint.path, start_epoch, self.epochs))
            for note in notes:
                notify(progress, Progress("note", message=note))

            for epoch in range(start_epoch, self.epochs):
                model.train()
                started = time.perf_counter()
                perm = torch.randperm(len(train), generator=gen).tolist()
                total_loss, n_batches, n_tokens = 0.0, 0, 0
                for b in range(0, len(perm), self.batch_size):
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
                    if n_batches % 10 == 0 or n_batches == steps_per_epoch:
                        rate = n_tokens / (time.perf_counter() - started)
                        notify(progress, Progress("train", epoch=epoch + 1, epochs=self.epochs, done=n_batches,
                                                  total=steps_per_epoch, unit="batch",
                                                  loss=total_loss / n_batches, rate=rate))
                seconds = time.perf_counter() - started
                ce = self._heldout_ce(model, heldout)
                record = {"epoch": epoch + 1, "step": step, "train_loss": total_loss / n_batches,
                          "heldout_ce": ce, "heldout_bits": ce / math.log(2),  # ppl = e^ce = 2^bits
                          "heldout_ppl": math.exp(ce), "unigram_ppl": math.exp(unigram),
                          "train_tokens": n_tokens, "seconds": round(seconds, 2),
                          "tokens_per_second": round(n_tokens / seconds, 1)}
                history.append(record)
                if checkpoints is not None:
                    # Every epoch, the last too: a kill while pooling resumes straight to the pooling.
                    checkpoints.write(epoch + 1, {STATE_FILE: checkpoint_bytes({
                        "format": CHECKPOINT_FORMAT, "config": asdict(config), "trainer": self._trainer_params(),
                        "corpus_sha256": corpus.sha256, "vocab": {"words": words, "counts": counts.tolist()},
                        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "step": step,
                        "rng": {"generator": gen.get_state(), "torch": torch.get_rng_state()}, "history": history,
                    })}, {"trainer": CHECKPOINT_KIND, "method": self.method, "params": params,
                          "corpus_sha256": corpus.sha256, "step": step})
                notify(progress, Progress("epoch", epoch=epoch + 1, epochs=self.epochs, loss=record["train_loss"],
                                          rate=record["tokens_per_second"], unit="tokens", seconds=seconds,
                                          metrics={"held-out masked ppl": record["heldout_ppl"],
                                                   "unigram ppl": record["unigram_ppl"]}))
            model.eval()
            self.model_, self.vocab_, self.counts_, self.history_ = model, words, counts.tolist(), history
            self.config_ = config
            self.embeddings_ = self._pool(corpus, progress, client, checkpoint_dir) if self.max_contexts else None
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

    def encoder(self, source: str = "trained") -> TransformerEncoder:
        """The trained model behind the contextual `Encoder` interface."""
        return TransformerEncoder(self.model_, self.vocab_, self.counts_, source)

    def _pool(self, corpus: PreparedCorpus, progress: ProgressCallback | None, client: Any = None,
              scratch: str | os.PathLike | None = None) -> Embeddings:
        """Static vectors pooled from the trained encoder (on `client`'s workers, which load a
        copy saved under `scratch`, if given)."""
        encoder = self.encoder()
        with contextlib.ExitStack() as stack:
            shared = stack.enter_context(shared_encoder(encoder, scratch)) if client is not None else None
            emb = build_contextual_model(
                encoder, corpus, min_count=self.min_count, max_vocab=self.max_vocab,
                max_contexts=self.max_contexts, max_tokens=self.max_tokens, layers=self.layers,
                seed=self.random_state, window=self.max_len, progress=progress, method=self.method,
                extra_meta={"training": {"config": asdict(self.config_), **self._trainer_params(),
                                         "history": self.history_},
                            "resumed_from_epoch": self.resumed_from_epoch_},
                cluster=client, shared=shared)
        meta = ModelMeta.from_dict(emb.meta)
        meta.params = {**self.get_params(), "d_ff": self.config_.d_ff}
        meta.epochs = int(self.epochs)
        meta.train_seconds = sum(h["seconds"] for h in self.history_) + (meta.train_seconds or 0.0)
        return Embeddings(emb.words, emb.vectors, emb.counts, meta.to_dict())

    def _write_extra(self, directory: Path) -> None:
        """The trained encoder, in `encoder/` (served by `POST /models/NAME/contextual`)."""
        self.encoder().save(directory / ENCODER_DIR)
