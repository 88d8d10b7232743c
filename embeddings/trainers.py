"""The trainer registry: every model family by name, and `train_model`, the one
path from a corpus to a saved model that the CLI's `train` commands (and the
Python API) take."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from .cluster import resolve_spec, using
from .pooling import ContextualTrainer
from .store import check_new_name, validate_name
from .svd import SVDTrainer
from .training import Checkpoints, Progress, ProgressCallback, Trainer, as_prepared, checkpoint_dir, notify
from .transformer_train import TransformerMLM
from .vectors import Embeddings
from .word2vec import CBOW, SkipGram

FAMILIES = ("cbow", "skipgram", "svd", "contextual", "transformer")
TRAINERS: dict[str, type[Trainer]] = {"cbow": CBOW, "skipgram": SkipGram, "svd": SVDTrainer,
                                      "contextual": ContextualTrainer, "transformer": TransformerMLM}


def trainer_class(family: str) -> type[Trainer]:
    """The trainer class of `family`; `ValueError` naming the families for an unknown one."""
    if family not in TRAINERS:
        raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    return TRAINERS[family]


def make_trainer(family: str, **params: Any) -> Trainer:
    """A `family` trainer with these hyper-parameters; `ValueError` naming unknown ones."""
    cls = trainer_class(family)
    accepted = cls.param_names()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"unknown parameter{'s' if len(unknown) > 1 else ''} for {family}: "
                         f"{', '.join(unknown)} (accepted: {', '.join(accepted)})")
    return cls(**params)


def train_model(
    family: str,
    corpus: Any,
    *,
    name: str,
    models_dir: str | os.PathLike,
    overwrite: bool = False,
    resume: bool = False,
    restart: bool = False,
    progress: ProgressCallback | None = None,
    data_dir: str | os.PathLike | None = None,
    fit_options: Mapping[str, Any] | None = None,
    cluster: Any = None,
    **params: Any,
) -> Embeddings:
    """Train model `name` of `family` on `corpus` and save it in `models_dir`; return its vectors.

    Before any corpus work: the parameters are checked, `name` must be free
    (unless `overwrite`), and a checkpoint left by an interrupted run of `name`
    must be continued (`resume`) or deleted (`restart`); it is never dropped
    silently. Then the corpus is prepared (into `data_dir`), the trainer fits with
    its checkpoints in `models_dir/.checkpoints/NAME`, the model is saved, and the
    checkpoints of the finished run are removed. `fit_options` are a trainer's
    extra `fit` arguments (SVD: `counts_from`, `checkpoint_every`). `cluster`
    (a spec such as "local:2" or "tcp://HOST:8786", a `distributed.Client`, or
    None for `$WORDSPACE_CLUSTER` if set) runs the corpus preparation and, for
    the families that spread their work (`Trainer.distributed`), the counting or
    pooling on a Dask cluster; word2vec trains on this machine.
    """
    if resume and restart:
        raise ValueError("resume and restart exclude each other: --resume continues the interrupted run, "
                         "--restart deletes its checkpoint and starts over")
    trainer = make_trainer(family, **params)
    trainer.check_params()
    validate_name(name)
    models_dir = Path(models_dir)
    if not overwrite:
        check_new_name(models_dir, name)
    checkpoints = Checkpoints(checkpoint_dir(models_dir, name))
    if restart:
        checkpoints.discard()
    elif not resume:
        checkpoints.refuse_leftovers()
    options = dict(fit_options or {})
    with using(resolve_spec(cluster) if cluster is None or isinstance(cluster, str) else cluster) as client:
        if client is not None and not trainer.distributed:
            notify(progress, Progress("note", message=f"{family} trains on this machine; only the corpus "
                                                      "preparation runs on the cluster"))
        prepared = as_prepared(corpus, data_dir, progress=progress if progress is not None else False,
                               cluster=client)
        if client is not None and trainer.distributed:
            options["cluster"] = client
        trainer.fit(prepared, checkpoint_dir=checkpoints.directory, resume=resume, progress=progress, **options)
    trainer.save(models_dir, name, overwrite=overwrite)
    checkpoints.remove()
    return trainer.embeddings_
