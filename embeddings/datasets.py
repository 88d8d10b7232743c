"""Data that ships inside installed packages: gensim's benchmark files and the
bundled sample corpus (no downloads, ever)."""
from __future__ import annotations

import bz2
import os
import re
from pathlib import Path

from .atomic import atomic_write

WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
LEE_CORPUS = "lee_background.cor"
SAMPLE_NAME = "sample"
DATA_ENV = "WORDSPACE_DATA"

#: Short names for the evaluation files in gensim's test data.
BENCHMARKS = {
    "google": "questions-words.txt",
    "ws353": "wordsim353.tsv",
    "wordsim353": "wordsim353.tsv",
    "simlex999": "simlex999.txt",
    "simlex": "simlex999.txt",
}


def gensim_data(name: str) -> Path:
    """Path of a file in gensim's installed test data (`gensim.test.utils.datapath`)."""
    from gensim.test.utils import datapath

    path = Path(datapath(name))
    if not path.is_file():
        raise FileNotFoundError(f"{name} is not in gensim's test data at {path.parent}")
    return path


def benchmark_path(name_or_path: str | os.PathLike) -> Path:
    """Resolve a benchmark short name (google, ws353, simlex999) or a file path."""
    key = str(name_or_path)
    if key.lower() in BENCHMARKS:
        return gensim_data(BENCHMARKS[key.lower()])
    path = Path(key)
    if not path.is_file():
        known = ", ".join(sorted(BENCHMARKS))
        raise FileNotFoundError(f"dataset {key!r} is neither a file nor one of: {known}")
    return path


def default_data_dir() -> Path:
    """`$WORDSPACE_DATA`, or ./data: where the sample corpus and prepared corpora live."""
    return Path(os.environ.get(DATA_ENV) or "data")


_BLANKS = re.compile(r"\s+")
_LEFTOVER_MARKUP = re.compile(r"^(thumb|right|left|\d+px)\|", re.MULTILINE)


def wiki_documents() -> list[str]:
    """Plain text of the articles in gensim's shortened English Wikipedia dump, one per item."""
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    docs = []
    with bz2.open(gensim_data(WIKI_DUMP), "rb") as dump:
        for _title, text, _pageid in extract_pages(dump):
            if text.lstrip().lower().startswith("#redirect"):
                continue
            plain = _LEFTOVER_MARKUP.sub("", filter_wiki(text))
            plain = _BLANKS.sub(" ", plain).strip()
            if plain:
                docs.append(plain)
    return docs


def write_sample_corpus(out: str | os.PathLike) -> Path:
    """Write the bundled sample corpus (Wikipedia extract + Lee corpus), one document per line.

    About 540k tokens; deterministic; written atomically. Returns `out`.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lee = gensim_data(LEE_CORPUS).read_text(encoding="utf-8", errors="replace").splitlines()
    lines = wiki_documents() + [_BLANKS.sub(" ", doc).strip() for doc in lee]
    text = "".join(line + "\n" for line in lines if line)
    atomic_write(out, lambda handle: handle.write(text.encode("utf-8")))
    return out


def sample_corpus_path(data_dir: str | os.PathLike | None = None) -> Path:
    """The sample corpus file in `data_dir`, written on first use."""
    path = Path(data_dir or default_data_dir()) / f"{SAMPLE_NAME}.txt"
    if not path.is_file():
        write_sample_corpus(path)
    return path
