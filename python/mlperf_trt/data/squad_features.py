"""SQuAD v1.1 examples and the reference feature conversion (SPEC §1.1, §2.4).

`read_squad` reads dev-v1.1.json as the reference read_squad_examples does (evaluation mode):
one example per question, in file order, the context split into "doc tokens" at the reference's
whitespace (space, tab, CR, LF and U+202F). `convert_examples_to_features` is the reference
convert_examples_to_features (create_squad_data.py): the question truncated to 64 WordPiece
tokens, the document in spans of at most 384 - len(query) - 3 tokens advancing by
min(span length, 128), `[CLS] query [SEP] span [SEP]`, segment ids 0 then 1, mask 1 on real
tokens, zero padding to 384, unique ids from 1000000000, token_to_orig_map and the "max context"
flag per document token. Feature i is LoadGen sample i (SPEC §1.1).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt.data.squad_tokenizer import WordPieceTokenizer
from mlperf_trt.errors import DataError

__all__ = [
    "DOC_STRIDE",
    "FIRST_UNIQUE_ID",
    "MAX_QUERY_LEN",
    "MAX_SEQ_LEN",
    "SquadExample",
    "SquadFeatures",
    "SquadGroundTruth",
    "convert_examples_to_features",
    "read_squad",
    "split_doc_tokens",
]

MAX_SEQ_LEN = 384  # SPEC §2.4
DOC_STRIDE = 128  # SPEC §2.4
MAX_QUERY_LEN = 64  # SPEC §2.4
FIRST_UNIQUE_ID = 1_000_000_000  # SPEC §2.4

# create_squad_data.py's is_whitespace (note U+202F, and no other Unicode space).
_DOC_SPLIT = re.compile("[ \t\r\n\u202f]+")


@dataclass(frozen=True)
class SquadExample:
    """One question (reference SquadExample), with its gold answer texts."""

    qas_id: str
    question: str
    doc_tokens: tuple[str, ...]  # shared by the questions of one paragraph
    answers: tuple[str, ...]
    paragraph: int  # index of the paragraph in file order (examples of one paragraph share it)


def split_doc_tokens(context: str) -> list[str]:
    """The doc tokens of a context as read_squad_examples makes them: the maximal runs of
    characters that are not its whitespace (" ", tab, CR, LF, U+202F)."""
    return [t for t in _DOC_SPLIT.split(context) if t]


def _field(obj: Any, key: str, kind: type, path: Path, where: str) -> Any:
    if not isinstance(obj, dict):
        raise DataError(f"{path}: {where} is {type(obj).__name__}, expected a JSON object")
    if key not in obj:
        raise DataError(f"{path}: {where}.{key} is missing (SQuAD v1.1 layout)")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataError(
            f"{path}: {where}.{key} is {type(value).__name__}, expected {kind.__name__}"
            " (SQuAD v1.1 layout)"
        )
    return value


def read_squad(path: Path) -> tuple[str, list[SquadExample]]:
    """(version, examples in file order) of a SQuAD v1.1 JSON file; DataError naming the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(
            f"no SQuAD file at {path}: expected the official dev-v1.1.json (or synthesize a set"
            " with `python -m mlperf_trt prepare --model bert`)"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path}: {err}") from err
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path} is not valid JSON ({err}); expected SQuAD v1.1") from err
    data = _field(obj, "data", list, path, "the top level")
    version = obj.get("version", "")
    examples: list[SquadExample] = []
    seen: dict[str, str] = {}
    paragraph_index = 0
    for a, article in enumerate(data):
        paragraphs = _field(article, "paragraphs", list, path, f"data[{a}]")
        for p, paragraph in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", str, path, where)
            qas = _field(paragraph, "qas", list, path, where)
            doc_tokens = tuple(split_doc_tokens(context))
            for q, qa in enumerate(qas):
                qwhere = f"{where}.qas[{q}]"
                qas_id = _field(qa, "id", str, path, qwhere)
                question = _field(qa, "question", str, path, qwhere)
                answers = _field(qa, "answers", list, path, qwhere)
                texts = tuple(
                    _field(ans, "text", str, path, f"{qwhere}.answers[{n}]")
                    for n, ans in enumerate(answers)
                )
                if qas_id in seen:
                    raise DataError(
                        f"{path}: {qwhere}.id {qas_id!r} repeats {seen[qas_id]}.id: question ids"
                        " must be unique (predictions are keyed by them)"
                    )
                seen[qas_id] = qwhere
                examples.append(SquadExample(qas_id, question, doc_tokens, texts, paragraph_index))
            paragraph_index += 1
    return str(version), examples


_METADATA = (
    "unique_id",
    "example_index",
    "doc_span_index",
    "doc_offset",
    "doc_len",
    "offsets",
    "orig_index",
    "max_context",
)


@dataclass(frozen=True)
class SquadFeatures:
    """The features of a data set: inputs plus what the post-processing needs (SPEC §2.4).

    Feature i (= sample i) is `[CLS] query [SEP] doc[doc_start : doc_start + doc_len] [SEP]`:
    positions doc_offset .. doc_offset + doc_len - 1 are document tokens, position p of them maps
    to doc token orig_index[offsets[i] + p - doc_offset] of its example, with the max-context flag
    max_context[offsets[i] + p - doc_offset].
    """

    input_ids: np.ndarray  # int64 [F, 384]
    unique_id: np.ndarray  # int64 [F]
    example_index: np.ndarray  # int64 [F]
    doc_span_index: np.ndarray  # int64 [F]
    doc_offset: np.ndarray  # int64 [F]: len(query) + 2
    doc_len: np.ndarray  # int64 [F]
    offsets: np.ndarray  # int64 [F + 1] into orig_index / max_context
    orig_index: np.ndarray  # int32 [sum doc_len]
    max_context: np.ndarray  # bool [sum doc_len]

    def __len__(self) -> int:
        return int(self.unique_id.shape[0])

    @property
    def seq_len(self) -> np.ndarray:
        """Real tokens per feature ([CLS] query [SEP] span [SEP]) = sum of input_mask."""
        lengths: np.ndarray = self.doc_offset + self.doc_len + 1
        return lengths

    def input_mask(self) -> np.ndarray:
        return (np.arange(MAX_SEQ_LEN)[None, :] < self.seq_len[:, None]).astype(np.int64)

    def segment_ids(self) -> np.ndarray:
        pos = np.arange(MAX_SEQ_LEN)[None, :]
        return ((pos >= self.doc_offset[:, None]) & (pos < self.seq_len[:, None])).astype(np.int64)

    def token_to_orig_map(self, i: int) -> dict[int, int]:
        start, off = int(self.offsets[i]), int(self.doc_offset[i])
        values = self.orig_index[start : int(self.offsets[i + 1])]
        return {off + p: int(v) for p, v in enumerate(values)}

    def token_is_max_context(self, i: int) -> dict[int, bool]:
        start, off = int(self.offsets[i]), int(self.doc_offset[i])
        values = self.max_context[start : int(self.offsets[i + 1])]
        return {off + p: bool(v) for p, v in enumerate(values)}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The metadata (everything but input_ids) as named arrays, for an .npz file."""
        return {name: getattr(self, name) for name in _METADATA}

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], input_ids: np.ndarray, where: Path
    ) -> SquadFeatures:
        try:
            feats = cls(input_ids=input_ids, **{k: arrays[k] for k in _METADATA})
        except KeyError as err:
            raise DataError(
                f"{where} lacks the array {err}; delete the cache folder and prepare again"
            ) from None
        n = len(feats)
        if input_ids.shape != (n, MAX_SEQ_LEN) or feats.offsets.shape != (n + 1,):
            raise DataError(
                f"{where} describes {n} features but the inputs hold {input_ids.shape[0]}; delete"
                " the cache folder and prepare again"
            )
        return feats


@dataclass(frozen=True)
class SquadGroundTruth:
    """What the metric needs (SPEC §2.4): the questions with their gold answers, the features in
    sample order, and the vocabulary to turn feature token ids back into WordPiece strings."""

    version: str
    examples: tuple[SquadExample, ...]
    features: SquadFeatures
    id_to_token: tuple[str, ...]
    source: str = ""  # the dev-v1.1.json it was read from

    def tokens(self, feature: int, start: int, end: int) -> list[str]:
        """WordPiece strings of positions start..end (inclusive) of a feature."""
        ids = self.features.input_ids[feature, start : end + 1]
        return [self.id_to_token[int(i)] for i in ids]


def _doc_spans(n_tokens: int, max_tokens_for_doc: int, doc_stride: int) -> list[tuple[int, int]]:
    """(start, length) of each span: the reference's sliding window."""
    spans: list[tuple[int, int]] = []
    start = 0
    while start < n_tokens:
        length = min(n_tokens - start, max_tokens_for_doc)
        spans.append((start, length))
        if start + length == n_tokens:
            break
        start += min(length, doc_stride)
    return spans


def _max_context(spans: list[tuple[int, int]], n_tokens: int) -> np.ndarray:
    """bool [n_spans, n_tokens]: span k is the "max context" span of token p (_check_is_max_context:
    the largest min(left, right) + 0.01 * length, the first span on a tie)."""
    pos = np.arange(n_tokens)[None, :]
    starts = np.array([s for s, _ in spans])[:, None]
    lengths = np.array([n for _, n in spans])[:, None]
    ends = starts + lengths - 1
    # Same float64 operations as the reference: min(int, int) + 0.01 * int.
    score = np.minimum(pos - starts, ends - pos) + 0.01 * lengths
    score = np.where((pos >= starts) & (pos <= ends), score, -np.inf)
    best = np.argmax(score, axis=0)  # the first maximum, as the reference's strict ">"
    result: np.ndarray = best[None, :] == np.arange(len(spans))[:, None]
    return result


def convert_examples_to_features(
    examples: Sequence[SquadExample],
    tokenizer: WordPieceTokenizer,
    *,
    max_seq_len: int = MAX_SEQ_LEN,
    doc_stride: int = DOC_STRIDE,
    max_query_len: int = MAX_QUERY_LEN,
) -> SquadFeatures:
    """The reference convert_examples_to_features (evaluation mode), in its order."""
    if max_seq_len != MAX_SEQ_LEN:
        raise DataError(f"max_seq_len {max_seq_len}: the features are {MAX_SEQ_LEN} long")
    if max_query_len + 3 >= max_seq_len or doc_stride < 1:
        raise DataError(
            f"max_query_len {max_query_len} / doc_stride {doc_stride} leave no room for the"
            f" document in {max_seq_len} tokens"
        )
    queries = tokenizer.encode([e.question for e in examples])
    # Tokenize each paragraph once (its questions share doc_tokens).
    first_of_paragraph: dict[int, int] = {}
    for n, e in enumerate(examples):
        first_of_paragraph.setdefault(e.paragraph, n)
    order = list(first_of_paragraph)
    encoded = tokenizer.encode_words([examples[first_of_paragraph[p]].doc_tokens for p in order])
    docs = dict(zip(order, encoded, strict=True))

    rows: list[np.ndarray] = []
    meta: dict[str, list[int]] = {
        k: [] for k in ("example_index", "doc_span_index", "doc_offset", "doc_len")
    }
    orig_parts: list[np.ndarray] = []
    ctx_parts: list[np.ndarray] = []
    for example_index, (example, query) in enumerate(zip(examples, queries, strict=True)):
        query = query[:max_query_len]
        doc_ids, tok_to_orig = docs[example.paragraph]
        doc = np.asarray(doc_ids, dtype=np.int64)
        orig = np.asarray(tok_to_orig, dtype=np.int32)
        max_tokens_for_doc = max_seq_len - len(query) - 3  # [CLS], [SEP], [SEP]
        spans = _doc_spans(len(doc_ids), max_tokens_for_doc, doc_stride)
        if not spans:
            continue  # an empty context has no features (as in the reference)
        is_max = _max_context(spans, len(doc_ids))
        head = [tokenizer.cls_id, *query, tokenizer.sep_id]
        for span_index, (start, length) in enumerate(spans):
            row = np.zeros(max_seq_len, dtype=np.int64)
            row[: len(head)] = head
            row[len(head) : len(head) + length] = doc[start : start + length]
            row[len(head) + length] = tokenizer.sep_id
            rows.append(row)
            meta["example_index"].append(example_index)
            meta["doc_span_index"].append(span_index)
            meta["doc_offset"].append(len(head))
            meta["doc_len"].append(length)
            orig_parts.append(orig[start : start + length])
            ctx_parts.append(is_max[span_index, start : start + length])
    n = len(rows)
    doc_len = np.asarray(meta["doc_len"], dtype=np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(doc_len, out=offsets[1:])
    return SquadFeatures(
        input_ids=np.stack(rows) if rows else np.zeros((0, max_seq_len), dtype=np.int64),
        unique_id=FIRST_UNIQUE_ID + np.arange(n, dtype=np.int64),
        example_index=np.asarray(meta["example_index"], dtype=np.int64),
        doc_span_index=np.asarray(meta["doc_span_index"], dtype=np.int64),
        doc_offset=np.asarray(meta["doc_offset"], dtype=np.int64),
        doc_len=doc_len,
        offsets=offsets,
        orig_index=np.concatenate(orig_parts) if orig_parts else np.zeros(0, np.int32),
        max_context=np.concatenate(ctx_parts) if ctx_parts else np.zeros(0, bool),
    )
