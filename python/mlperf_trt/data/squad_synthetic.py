"""Seeded synthetic SQuAD v1.1 text and a matching WordPiece vocabulary (official layouts).

The text is made of pseudo-words built from syllables, with sentence punctuation, numbers (split
into "##" digit pieces), suffixed words (stem + "##s"/"##ed"/...: WordPiece splits) and a few
accented words (stripped to their vocabulary form: exercises get_final_text's alignment).
Paragraph lengths are drawn so that the features' real lengths spread over about 60..384 tokens,
and about one paragraph in eight is long enough to need 2-3 document spans (doc_stride, SPEC §2.4).
The gold answers are filled in later by Squad.synthesize from a model's own predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlperf_trt.data.squad_tokenizer import SPECIAL_TOKENS

__all__ = ["SyntheticParagraph", "SyntheticText", "make_text", "vocab_lines"]

_ONSETS = ("b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br",
           "st", "tr", "pl", "gr", "sh", "th", "ch")  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ea")
_CODAS = ("", "", "", "n", "r", "s", "l", "m", "t", "nd", "rk")
_SUFFIXES = ("s", "ed", "ing", "ly", "er", "ness")
_PUNCT = tuple(".,;:!?()'\"-%$&/")
_WH = ("what", "who", "when", "where", "which", "how", "why")
_ACCENTS = {"a": "á", "e": "é", "i": "í", "o": "ö", "u": "ü"}
_LEXICON = 2400
_LONG_FRACTION = 0.05  # paragraphs that need 2-3 spans


@dataclass
class SyntheticParagraph:
    context: str
    questions: list[tuple[str, str]] = field(default_factory=list)  # (id, question text)


@dataclass
class SyntheticText:
    articles: list[tuple[str, list[SyntheticParagraph]]]  # (title, paragraphs)
    words: list[str]  # the lexicon: every whole word the text uses (lower case)


def _lexicon(rng: np.random.Generator, size: int) -> list[str]:
    words: set[str] = set()
    out: list[str] = []
    while len(out) < size:
        n = int(rng.integers(1, 4))
        word = "".join(
            _ONSETS[rng.integers(len(_ONSETS))]
            + _VOWELS[rng.integers(len(_VOWELS))]
            + _CODAS[rng.integers(len(_CODAS))]
            for _ in range(n)
        )
        if len(word) >= 2 and word not in words and word not in _WH:
            words.add(word)
            out.append(word)
    return out


def _word(rng: np.random.Generator, lexicon: list[str]) -> tuple[str, int]:
    """(surface form, WordPiece token count) of one running word."""
    r = rng.random()
    stem = lexicon[int(rng.zipf(1.3)) % len(lexicon)] if r < 0.5 else lexicon[rng.integers(600)]
    if r < 0.06:
        number = str(int(rng.integers(1, 3000)))
        return number, len(number)  # "1984" -> 1 ##9 ##8 ##4
    if r < 0.14:
        return stem + _SUFFIXES[rng.integers(len(_SUFFIXES))], 2
    if r < 0.16:
        i = next((k for k, ch in enumerate(stem) if ch in _ACCENTS), None)
        if i is not None:
            return stem[:i] + _ACCENTS[stem[i]] + stem[i + 1 :], 1
    return stem, 1


def _sentence(rng: np.random.Generator, lexicon: list[str]) -> tuple[list[str], int]:
    words: list[str] = []
    tokens = 0
    for k in range(int(rng.integers(5, 22))):
        w, n = _word(rng, lexicon)
        if k == 0:
            w = w[:1].upper() + w[1:]
        tokens += n
        r = rng.random()
        if r < 0.08 and k > 0:
            w += ","
            tokens += 1
        elif r < 0.11:
            w = f"({w})"
            tokens += 2
        elif r < 0.12:
            w += "'s"
            tokens += 2
        words.append(w)
    words[-1] += "."
    return words, tokens + 1


def _paragraph(rng: np.random.Generator, lexicon: list[str]) -> list[str]:
    if rng.random() < _LONG_FRACTION:
        target = int(rng.integers(390, 540))  # 2-3 spans of <= ~370 tokens, stride 128
    else:
        target = int(rng.integers(45, 330))
    words: list[str] = []
    tokens = 0
    while tokens < target:
        sentence, n = _sentence(rng, lexicon)
        words += sentence
        tokens += n
    return words


def _question(rng: np.random.Generator, context_words: list[str]) -> str:
    n = int(rng.integers(3, 14)) if rng.random() > 0.03 else int(rng.integers(60, 80))
    start = int(rng.integers(0, max(1, len(context_words) - n)))
    picked = [w.strip(".,()'s").lower() or "x" for w in context_words[start : start + n]]
    wh = _WH[rng.integers(len(_WH))]
    return f"{wh.capitalize()} {' '.join(picked)}?"


def make_text(count: int, seed: int) -> SyntheticText:
    """`count` questions over seeded paragraphs grouped into titled articles."""
    rng = np.random.default_rng([seed, 0x5A0AD])
    lexicon = _lexicon(rng, _LEXICON)
    articles: list[tuple[str, list[SyntheticParagraph]]] = []
    made = 0
    while made < count:
        title = "_".join(w.capitalize() for w in rng.choice(lexicon[:600], 2, replace=False))
        paragraphs: list[SyntheticParagraph] = []
        for _ in range(int(rng.integers(1, 6))):
            if made >= count:
                break
            words = _paragraph(rng, lexicon)
            paragraph = SyntheticParagraph(" ".join(words))
            for _ in range(min(int(rng.integers(1, 5)), count - made)):
                qid = "".join(f"{b:02x}" for b in rng.integers(0, 256, 12))
                paragraph.questions.append((qid, _question(rng, words)))
                made += 1
            paragraphs.append(paragraph)
        articles.append((f"{title}_{len(articles)}", paragraphs))
    return SyntheticText(articles, lexicon)


def vocab_lines(lexicon: list[str]) -> list[str]:
    """vocab.txt in the official BERT uncased layout: [PAD] at 0, [unused0..98] at 1..99, [UNK]
    [CLS] [SEP] [MASK] at 100..103, then single characters, whole words and ##pieces."""
    lines = ["[PAD]", *(f"[unused{i}]" for i in range(99))]
    lines += [t for t in SPECIAL_TOKENS if t != "[PAD]"]  # [UNK] [CLS] [SEP] [MASK]
    lines += [f"[unused{i}]" for i in range(99, 120)]
    singles = [*_PUNCT, *"0123456789", *"abcdefghijklmnopqrstuvwxyz"]
    lines += singles
    lines += [w for w in (*_WH, "s", *lexicon) if w not in singles]
    lines += [f"##{s}" for s in _SUFFIXES]
    lines += [f"##{c}" for c in "0123456789abcdefghijklmnopqrstuvwxyz"]
    return list(dict.fromkeys(lines))  # "##s" is both a suffix and a letter: one line each
