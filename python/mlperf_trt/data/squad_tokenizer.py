"""The BERT uncased WordPiece tokenizer of the SQuAD reference, on the `tokenizers` library.

What the reference runs (SPEC §2.4): the MLPerf QSL and accuracy-squad.py build the features with
transformers' `BertTokenizer(vocab.txt)`: special tokens ([UNK] [SEP] [PAD] [CLS] [MASK]) are cut
out of the raw text first, the rest is lower-cased character by character, then BasicTokenizer
(clean text, pad CJK characters, NFC, whitespace split, lower, NFD + drop Mn, split punctuation)
and WordpieceTokenizer (greedy longest match, "##" pieces, a word over 100 characters or with an
unmatched rest is one [UNK]). get_final_text in accuracy-squad.py runs the original Google
`tokenization.BasicTokenizer` instead, which lower-cases whole words (so a word-final capital
sigma becomes "ς", not "σ") and knows no special tokens.

The Rust library (BertNormalizer + BertPreTokenizer + WordPiece) gives the same tokens for every
ASCII string, but its character tables are older than Python's `unicodedata` (Unicode 14 on 3.11)
and it keeps unassigned code points that Python drops as control characters. Compared with a plain
reimplementation of the reference (tests/test_squad.py) the differences, all outside ASCII, are
handled here before the library sees the text:

* Python's decision is applied per character (cached): control / unassigned / NUL / U+FFFD are
  dropped, Python whitespace becomes " " (also U+2028 / U+2029, where the reference's final
  str.split() splits), CJK characters and Python punctuation become a word of their own (CJK
  compatibility ideographs in their NFD form), letters are lower-cased per character and stripped
  of Mn marks as the reference does.
* A character whose class the library still gets wrong (code points newer than its tables, e.g.
  U+2E55 brackets that it does not split, U+1734 that it strips as Mn, U+166D that it splits) is
  replaced by a private-use placeholder the library treats as a plain letter. Words holding it
  become [UNK] exactly as in the reference, as long as the vocabulary does not contain that
  character (a warning is logged if it does); get_final_text maps placeholders back.
* get_final_text's tokenizer lower-cases the whole text in Python first (word-final "ς").
* Checked once over all 1,114,112 code points (each in "ab?cd ? A? Σ?"), both paths equal the
  reimplementation; the tests repeat it on a sample of code points and on tricky strings.
* Known, accepted divergences: a character the reference removes (control, unassigned) right
  after a capital sigma can change get_final_text's final-sigma decision; a removed mark inside
  a special token ("[SEP" U+0301 "]") makes it a special token here, not in the reference.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from mlperf_trt.errors import DataError

__all__ = [
    "CLS",
    "MAX_CHARS_PER_WORD",
    "SEP",
    "SPECIAL_TOKENS",
    "UNK",
    "WordPieceTokenizer",
    "basic_tokenize",
    "read_vocab",
]

log = logging.getLogger(__name__)

UNK, CLS, SEP, PAD, MASK = "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
MAX_CHARS_PER_WORD = 100  # WordpieceTokenizer.max_input_chars_per_word: longer words are [UNK]
_PLACEHOLDER_BASE = 0xF0000  # Supplementary Private Use Area-A: never in text after cleaning


def read_vocab(path: Path) -> dict[str, int]:
    """vocab.txt as the reference loads it: one token per line, id = line number (0-based)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(
            f"no WordPiece vocabulary at {path}: expected BERT's uncased vocab.txt (30,522 lines,"
            " one token per line); put it next to dev-v1.1.json or pass its path"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the vocabulary {path}: {err}") from err
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    vocab: dict[str, int] = {}
    for index, token in enumerate(lines):
        vocab[token] = index  # as transformers' load_vocab: a repeated token keeps its last id
    missing = [t for t in (UNK, CLS, SEP) if t not in vocab]
    if missing:
        raise DataError(
            f"{path} is not a BERT WordPiece vocabulary: it lacks {', '.join(missing)}; use the"
            " uncased vocab.txt that belongs to the model"
        )
    return vocab


# -- the reference's character classes (BasicTokenizer's _is_whitespace/_is_control/...) ---------


def _is_whitespace(c: str) -> bool:
    return c in " \t\n\r" or unicodedata.category(c) == "Zs"


def _is_control(c: str) -> bool:
    if c in "\t\n\r":
        return False
    return unicodedata.category(c).startswith("C")


def _is_punctuation(c: str) -> bool:
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def _is_chinese(c: str) -> bool:
    cp = ord(c)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


_ASCII_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _library_parts() -> tuple[normalizers.Normalizer, pre_tokenizers.PreTokenizer]:
    # clean_text=False: cleaning is Python's decision (see the module docstring).
    normalizer = normalizers.BertNormalizer(
        clean_text=False, handle_chinese_chars=True, strip_accents=True, lowercase=True
    )
    return normalizer, pre_tokenizers.BertPreTokenizer()


class _ReferenceChars(dict[int, str]):
    """str.translate table: non-ASCII code point -> what the reference makes of it, in a form the
    library then tokenizes the same way. Filled lazily, one entry per distinct character."""

    def __init__(self, vocab_chars: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self._vocab_chars = vocab_chars
        self._normalizer, self._pre = _library_parts()
        self.placeholders: dict[str, str] = {}  # placeholder -> original character

    def _library_pieces(self, text: str) -> list[str]:
        return [p for p, _ in self._pre.pre_tokenize_str(self._normalizer.normalize_str(text))]

    def _placeholder(self, c: str) -> str:
        if c in self._vocab_chars:  # cannot replace it without changing WordPiece matches
            log.warning(
                "character U+%04X is in the vocabulary but the tokenizers library classifies it"
                " differently from the reference: words holding it may tokenize differently",
                ord(c),
            )
            return c
        for key, value in self.placeholders.items():
            if value == c:
                return key
        key = chr(_PLACEHOLDER_BASE + len(self.placeholders))
        self.placeholders[key] = c
        return key

    def __missing__(self, cp: int) -> str:
        c = chr(cp)
        if cp == 0 or cp == 0xFFFD or _is_control(c):
            out = ""
        elif _is_whitespace(c) or c.isspace():
            # isspace: whitespace_tokenize's str.split() also splits at U+2028 / U+2029.
            out = " "
        else:
            parts: list[str] = []
            # The reference lower-cases, then NFD and drops Mn (BasicTokenizer._run_strip_accents);
            # a CJK character is a word of its own (CJK compatibility ideographs decompose).
            chinese = _is_chinese(c)
            stripped = "".join(
                x
                for x in unicodedata.normalize("NFD", c.lower())
                if unicodedata.category(x) != "Mn"
            )
            for x in stripped:
                if chinese or _is_punctuation(x):
                    ok = self._library_pieces(f" {x} ") == [x]
                    parts.append(f" {x if ok else self._placeholder(x)} ")
                else:
                    ok = self._library_pieces(f"a{x}a") == [f"a{x}a"]
                    parts.append(x if ok else self._placeholder(x))
            out = "".join(parts)
        self[cp] = out
        return out

    def apply(self, text: str) -> str:
        # Printable ASCII (with \t \n \r) is left to the library: it equals the reference there.
        if text.isascii() and not _ASCII_CONTROL.search(text):
            return text
        return text.translate(self)


class WordPieceTokenizer:
    """transformers' BertTokenizer(vocab.txt) (do_lower_case=True), as the reference uses it."""

    def __init__(self, vocab: Mapping[str, int]) -> None:
        self.vocab = dict(vocab)
        for token in (UNK, CLS, SEP):
            if token not in self.vocab:
                raise DataError(f"the vocabulary lacks {token}: expected BERT's uncased vocab.txt")
        size = max(self.vocab.values()) + 1
        id_to_token = [UNK] * size
        for token, index in self.vocab.items():
            id_to_token[index] = token
        self.id_to_token: tuple[str, ...] = tuple(id_to_token)
        self.unk_id, self.cls_id, self.sep_id = (self.vocab[t] for t in (UNK, CLS, SEP))
        model = models.WordPiece(
            self.vocab, unk_token=UNK, max_input_chars_per_word=MAX_CHARS_PER_WORD
        )
        self._tokenizer = Tokenizer(model)
        self._tokenizer.normalizer, self._tokenizer.pre_tokenizer = _library_parts()
        # The reference cuts special tokens out of the raw text before anything else.
        self._tokenizer.add_special_tokens([t for t in SPECIAL_TOKENS if t in self.vocab])
        chars = frozenset(c for token in self.vocab for c in token if not c.isascii())
        self._chars = _ReferenceChars(chars)

    @classmethod
    def from_file(cls, path: Path) -> WordPieceTokenizer:
        return cls(read_vocab(path))

    def __len__(self) -> int:
        return len(self.id_to_token)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (no [CLS]/[SEP] added)."""
        prepared = [self._chars.apply(t) for t in texts]
        encodings = self._tokenizer.encode_batch(prepared, add_special_tokens=False)
        return [e.ids for e in encodings]

    def encode_words(self, docs: Sequence[Sequence[str]]) -> list[tuple[list[int], list[int]]]:
        """For each list of words: (token ids, index of the word each token came from).

        Equal to tokenizing every word on its own, as convert_examples_to_features does (tokens
        never cross the spaces between words); the words are encoded joined, which is several
        times faster than the library's pre-tokenized input.
        """
        joined: list[str] = []
        starts: list[np.ndarray] = []
        for words in docs:
            prepared = [self._chars.apply(w) for w in words]
            lengths = np.fromiter((len(w) + 1 for w in prepared), dtype=np.int64, count=len(words))
            starts.append(np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64))
            joined.append(" ".join(prepared))
        encodings = self._tokenizer.encode_batch(joined, add_special_tokens=False)
        out: list[tuple[list[int], list[int]]] = []
        for word_starts, enc in zip(starts, encodings, strict=True):
            token_starts = np.fromiter((o[0] for o in enc.offsets), dtype=np.int64)
            word_of = np.searchsorted(word_starts, token_starts, side="right") - 1
            out.append((enc.ids, word_of.tolist()))
        return out

    def tokenize(self, text: str) -> list[str]:
        """WordPiece token strings of one text."""
        return [self.id_to_token[i] for i in self.encode([text])[0]]


_BASIC_CHARS = _ReferenceChars()
_BASIC_NORMALIZER, _BASIC_PRE = _library_parts()
_PLACEHOLDERS = re.compile("[\U000f0000-\U000fffff]")


def basic_tokenize(text: str) -> list[str]:
    """Google's tokenization.BasicTokenizer(do_lower_case=True).tokenize(text), used by
    get_final_text: whole-word lower-casing (final sigma), no special tokens, no NFC."""
    lowered = text.lower() if not text.isascii() else text
    prepared = _BASIC_CHARS.apply(lowered)
    pieces = [p for p, _ in _BASIC_PRE.pre_tokenize_str(_BASIC_NORMALIZER.normalize_str(prepared))]
    if _BASIC_CHARS.placeholders and _PLACEHOLDERS.search(prepared):
        back = _BASIC_CHARS.placeholders
        pieces = [_PLACEHOLDERS.sub(lambda m: back[m.group(0)], p) for p in pieces]
    return pieces
