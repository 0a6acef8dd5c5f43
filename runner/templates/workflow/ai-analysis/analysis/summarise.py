"""A tiny stdlib "model": TF-IDF keywords per module, from its docstrings and identifiers.

Each module is a document; its words are those of its docstrings plus the parts of its
names (``price_for`` -> price, for). A word scores high in a module when it is frequent
there and rare elsewhere: tf = count / words in the module, idf = ln((1 + N) / (1 + df)) + 1
(smoothed, as scikit-learn does). Scores are rounded and ties broken by the word, so the
output is the same bytes on every run.

Usage: python3 analysis/summarise.py --index out/index.json --top-k 5 --out out/keywords.json
Passes on ``top_terms=`` (the whole tree's best words, comma-separated).
"""

from __future__ import annotations

import argparse
import math
import re
from collections import Counter
from pathlib import Path

from common import emit, read_json, split_identifier, write_json

STOPWORDS_TEXT = """
    a about above after again all also an and any are as at be been before being below but
    by can cannot could did do does each else every for from get had has have how if in into
    is it its itself just may more most must never no nor not of off on once one only or other
    our out over own same self should so some such than that the their them then there these
    they this those through to too under until up very was we were what when where which while
    who whom why will with would you your none true false str int float bool list dict set
    return returns raise value values args kwargs cls"""
STOPWORDS = frozenset(STOPWORDS_TEXT.split())


def words(text: str) -> list[str]:
    found = []
    for token in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text):
        found += split_identifier(token)
    return [w for w in found if len(w) > 2 and w not in STOPWORDS]


def documents(index: dict) -> dict[str, list[str]]:
    docs: dict[str, list[str]] = {m["module"]: words(m["docstring"]) for m in index["modules"]}
    for item in index["classes"] + index["functions"]:
        doc = docs[item["module"]]
        doc += words(item["docstring"]) + words(item["qualname"])
        doc += words(" ".join(item.get("identifiers", [])))
    return docs


def tfidf(docs: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    n = len(docs)
    df = Counter(word for doc in docs.values() for word in set(doc))
    scores: dict[str, dict[str, float]] = {}
    for name, doc in docs.items():
        counts = Counter(doc)
        scores[name] = {
            w: round(c / len(doc) * (math.log((1 + n) / (1 + df[w])) + 1), 4)
            for w, c in counts.items()
        }
    return scores


def top(scores: dict[str, float], k: int) -> list[str]:
    return [w for w, _ in sorted(scores.items(), key=lambda ws: (-ws[1], ws[0]))[:k]]


def summarise(index: dict, k: int) -> dict:
    docs = documents(index)
    scores = tfidf(docs)
    modules = {}
    for m in index["modules"]:
        first_sentence = m["docstring"].split("\n\n")[0].replace("\n", " ").split(". ")[0]
        modules[m["module"]] = {
            "summary": first_sentence.rstrip("."),
            "keywords": top(scores[m["module"]], k),
        }
    return {"top_k": k, "modules": modules, "corpus": top(corpus_scores(docs), k)}


def corpus_scores(docs: dict[str, list[str]]) -> dict[str, float]:
    """The whole tree as one document, idf still per module: what the code is about overall."""
    n = len(docs)
    df = Counter(word for doc in docs.values() for word in set(doc))
    counts = Counter(word for doc in docs.values() for word in doc)
    total = sum(counts.values())
    return {
        w: round(c / total * (math.log((1 + n) / (1 + df[w])) + 1), 4) for w, c in counts.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = summarise(read_json(args.index), args.top_k)
    write_json(args.out, result)
    emit(top_terms=",".join(result["corpus"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
