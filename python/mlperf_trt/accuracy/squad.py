"""BERT F1 / exact match over SQuAD v1.1 (SPEC §2.4), as accuracy-squad.py + evaluate_v1.1.py.

accuracy-squad.py decodes each logged payload as [seq][2] (start, end) logits (or [2][seq] with
--output_transposed) in --output_dtype, pads it to 384 positions with -10000, maps qsl_idx to
feature qsl_idx, and writes one prediction per question: the best of the start/end top-20 pairs
(n_best_size 20) over the question's logged features, keeping only pairs whose both ends are
document tokens (token_to_orig_map), whose start has "max context", with end >= start and at most
30 tokens (max_answer_length); the WordPiece text is projected back onto the original words by
get_final_text with Google's BasicTokenizer. evaluate_v1.1.py then averages EM and token F1 (max
over the gold answers) over every question of the file and prints `{"exact_match": X, "f1": Y}`.

Reference details kept on purpose:
* A question none of whose features is in the log still gets a prediction: the reference's nonce
  text "empty" (write_predictions), scored like any other text (so 0 unless a gold answer
  normalises to "empty"); evaluate_v1.1 divides by every question of the data set. So a partial
  log scores low, as with the reference.
* Duplicate qsl_idx entries: load_loadgen_log keeps them all and the unique_id -> result dict
  keeps the LAST one (SPEC §1.2 says "first"; for BERT both are the same payload).
* Only the top candidate matters for the prediction (the n-best list, its de-duplication and
  softmax never change nbest[0]), so only it goes through get_final_text.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt.accuracy.base import Report
from mlperf_trt.accuracy.log import read_accuracy_log
from mlperf_trt.data.squad_features import MAX_SEQ_LEN, SquadGroundTruth
from mlperf_trt.data.squad_tokenizer import basic_tokenize
from mlperf_trt.errors import AccuracyError

__all__ = [
    "MAX_ANSWER_LENGTH",
    "N_BEST_SIZE",
    "OUTPUT_DTYPES",
    "Prediction",
    "decode_log",
    "evaluate",
    "get_final_text",
    "predict",
    "predictions",
    "score",
]

log = logging.getLogger(__name__)

N_BEST_SIZE = 20  # SPEC §2.4
MAX_ANSWER_LENGTH = 30  # SPEC §2.4
PAD_LOGIT = -10000.0  # SPEC §1.2: shorter payloads are padded with -10000
NO_ANSWER = "empty"  # write_predictions' nonce text when a question has no valid span
# accuracy-squad.py --output_dtype choices
OUTPUT_DTYPES = ("int8", "int16", "int32", "int64", "float16", "float32", "float64")


@dataclass(frozen=True)
class Prediction:
    """The answer of one question: its text and the doc-token range it came from (-1: none)."""

    text: str
    doc_start: int
    doc_end: int


# -- decoding -------------------------------------------------------------------------------------


def _top(logits: np.ndarray, n: int) -> np.ndarray:
    """_get_best_indexes: indices of the n largest values, ties in index order."""
    return np.argsort(-logits, kind="stable")[:n]


def _strip_spaces(text: str) -> tuple[str, dict[int, int]]:
    ns_to_s: dict[int, int] = {}
    chars: list[str] = []
    for i, c in enumerate(text):
        if c == " ":
            continue
        ns_to_s[len(chars)] = i
        chars.append(c)
    return "".join(chars), ns_to_s


def get_final_text(pred_text: str, orig_text: str) -> str:
    """The reference get_final_text (do_lower_case=True): the part of orig_text that pred_text
    (lower-cased, accent-stripped WordPiece text) aligns to; orig_text when alignment fails."""
    tok_text = " ".join(basic_tokenize(orig_text))
    start = tok_text.find(pred_text)
    if start == -1:
        return orig_text
    end = start + len(pred_text) - 1
    orig_ns, orig_ns_to_s = _strip_spaces(orig_text)
    tok_ns, tok_ns_to_s = _strip_spaces(tok_text)
    if len(orig_ns) != len(tok_ns):
        return orig_text
    tok_s_to_ns = {s: ns for ns, s in tok_ns_to_s.items()}
    orig_start = orig_ns_to_s.get(tok_s_to_ns[start]) if start in tok_s_to_ns else None
    if orig_start is None:
        return orig_text
    orig_end = orig_ns_to_s.get(tok_s_to_ns[end]) if end in tok_s_to_ns else None
    if orig_end is None:
        return orig_text
    return orig_text[orig_start : orig_end + 1]


def predict(truth: SquadGroundTruth, logits: Mapping[int, np.ndarray]) -> list[Prediction]:
    """One prediction per question (data-set order). logits[i]: float [seq <= 384, 2] (start,
    end) of feature i; features not in `logits` are skipped, as missing log entries are."""
    feats = truth.features
    by_example: dict[int, list[int]] = collections.defaultdict(list)
    for i in range(len(feats)):
        by_example[int(feats.example_index[i])].append(i)
    out: list[Prediction] = []
    for example_index, example in enumerate(truth.examples):
        best: tuple[float, int, int, int] | None = None  # (score, feature, start, end)
        for i in by_example.get(example_index, ()):
            if i not in logits:
                continue
            start_logits, end_logits = _padded(logits[i])
            off, n = int(feats.doc_offset[i]), int(feats.doc_len[i])
            base = int(feats.offsets[i])
            starts, ends = _top(start_logits, N_BEST_SIZE), _top(end_logits, N_BEST_SIZE)
            s, e = starts[:, None], ends[None, :]
            in_doc_s, in_doc_e = (s >= off) & (s < off + n), (e >= off) & (e < off + n)
            ctx = feats.max_context[base + np.clip(s - off, 0, n - 1)]  # spans are never empty
            valid = in_doc_s & in_doc_e & ctx & (e >= s) & (e - s + 1 <= MAX_ANSWER_LENGTH)
            if not valid.any():
                continue
            total = np.where(valid, start_logits[s] + end_logits[e], -np.inf)
            k = int(np.argmax(total))  # first maximum in (start rank, end rank) order
            cand = (float(total.flat[k]), i, int(starts[k // len(ends)]), int(ends[k % len(ends)]))
            # prelim_predictions is sorted stably: an earlier feature wins a tie.
            if best is None or cand[0] > best[0]:
                best = cand
        if best is None:
            out.append(Prediction(NO_ANSWER, -1, -1))
            continue
        _, i, start, end = best
        tok_text = " ".join(truth.tokens(i, start, end))
        tok_text = tok_text.replace(" ##", "").replace("##", "")
        tok_text = " ".join(tok_text.strip().split())
        orig = truth.features.token_to_orig_map(i)
        doc_start, doc_end = orig[start], orig[end]
        orig_text = " ".join(example.doc_tokens[doc_start : doc_end + 1])
        out.append(Prediction(get_final_text(tok_text, orig_text), doc_start, doc_end))
    return out


def _padded(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] > MAX_SEQ_LEN:
        raise AccuracyError(
            f"logits of shape {arr.shape}: expected [seq <= {MAX_SEQ_LEN}, 2] (start, end)"
        )
    start = np.full(MAX_SEQ_LEN, PAD_LOGIT)
    end = np.full(MAX_SEQ_LEN, PAD_LOGIT)
    start[: arr.shape[0]] = arr[:, 0]
    end[: arr.shape[0]] = arr[:, 1]
    return start, end


def predictions(truth: SquadGroundTruth, logits: Mapping[int, np.ndarray]) -> dict[str, str]:
    """{question id: predicted text} for every question, as predictions.json holds it."""
    return {e.qas_id: p.text for e, p in zip(truth.examples, predict(truth, logits), strict=True)}


def decode_log(
    log_path: Path,
    count: int,
    dtype: str = "float32",
    *,
    output_transposed: bool = False,
) -> dict[int, np.ndarray]:
    """{qsl_idx: float [seq, 2]} from mlperf_log_accuracy.json (load_loadgen_log)."""
    if dtype not in OUTPUT_DTYPES:
        raise AccuracyError(f"--output_dtype {dtype!r}: expected one of {', '.join(OUTPUT_DTYPES)}")
    item = np.dtype(dtype).itemsize
    out: dict[int, np.ndarray] = {}
    for n, entry in enumerate(read_accuracy_log(log_path)):
        if not 0 <= entry.qsl_idx < count:
            raise AccuracyError(
                f"{log_path}: entry {n} has qsl_idx {entry.qsl_idx}, outside the data set's"
                f" {count} features; score the log against the data set it was run on"
            )
        if len(entry.data) % (2 * item):
            raise AccuracyError(
                f"{log_path}: entry {n} (qsl_idx {entry.qsl_idx}) holds {len(entry.data)} bytes,"
                f" not a whole number of {dtype} (start, end) pairs; check --dtype"
            )
        values = np.frombuffer(entry.data, dtype=dtype)
        pairs = values.reshape(2, -1).T if output_transposed else values.reshape(-1, 2)
        if pairs.shape[0] > MAX_SEQ_LEN:
            raise AccuracyError(
                f"{log_path}: entry {n} (qsl_idx {entry.qsl_idx}) holds {pairs.shape[0]}"
                f" positions, more than {MAX_SEQ_LEN}; check --dtype"
            )
        out[entry.qsl_idx] = pairs  # a repeated qsl_idx: the last one counts (see above)
    return out


# -- evaluate_v1.1.py -----------------------------------------------------------------------------

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _normalize_answer(s: str) -> str:
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def _f1(prediction: str, truth: str) -> float:
    pred_tokens, truth_tokens = (
        _normalize_answer(prediction).split(),
        _normalize_answer(truth).split(),
    )
    common = collections.Counter(pred_tokens) & collections.Counter(truth_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def _questions(data: Iterable[Any]) -> Iterable[tuple[str, Sequence[str]]]:
    for article in data:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                yield qa["id"], [a["text"] for a in qa["answers"]]


def score(data: Iterable[Any] | SquadGroundTruth, preds: Mapping[str, str]) -> dict[str, float]:
    """evaluate_v1.1.evaluate: {"exact_match", "f1"} in percent over every question of `data`
    (the JSON's "data" list, or a ground truth). A question missing from `preds` scores 0 and is
    reported, as the reference prints 'Unanswered question ... will receive score 0.'."""
    if isinstance(data, SquadGroundTruth):
        questions: Iterable[tuple[str, Sequence[str]]] = (
            (e.qas_id, e.answers) for e in data.examples
        )
    else:
        questions = _questions(data)
    f1 = exact = 0.0
    total = 0
    for qas_id, golds in questions:
        total += 1
        if qas_id not in preds:
            log.warning("Unanswered question %s will receive score 0.", qas_id)
            continue
        if not golds:
            raise AccuracyError(
                f"question {qas_id} has no gold answer: SQuAD v1.1 dev has at least one per"
                " question; score against the official dev-v1.1.json"
            )
        prediction = preds[qas_id]
        exact += max(float(_normalize_answer(prediction) == _normalize_answer(g)) for g in golds)
        f1 += max(_f1(prediction, g) for g in golds)
    if total == 0:
        raise AccuracyError("the data set holds no questions: nothing to score")
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


def evaluate(
    log_path: Path,
    truth: SquadGroundTruth,
    dtype: str = "float32",
    *,
    output_transposed: bool = False,
) -> Report:
    """accuracy-squad.py + evaluate_v1.1.py over an accuracy log; Report.line is the JSON line
    evaluate_v1.1.py prints (SPEC §1.3 "F1")."""
    logits = decode_log(log_path, len(truth.features), dtype, output_transposed=output_transposed)
    if not logits:
        raise AccuracyError(f"{log_path}: the log holds no entries; was it a performance run?")
    preds = predict(truth, logits)
    by_id = {e.qas_id: p.text for e, p in zip(truth.examples, preds, strict=True)}
    result = score(truth, by_id)
    # json.dumps of plain floats, exactly as evaluate_v1.1.py prints the dict.
    line = json.dumps({"exact_match": result["exact_match"], "f1": result["f1"]})
    unanswered = sum(1 for p in preds if p.doc_start < 0)
    return Report(
        line,
        {"F1": result["f1"], "exact_match": result["exact_match"]},
        {
            "questions": len(truth.examples),
            "features_logged": len(logits),
            "features": len(truth.features),
            "no_span": unanswered,
        },
    )
