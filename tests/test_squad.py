"""SQuAD v1.1 data path and F1/EM metric for BERT (SPEC §1.1, §1.2, §2.4).

The features and tokens are checked against hand-computed values and against a plain
reimplementation of the reference tokenizer (transformers' BertTokenizer, slow version, and
Google's BasicTokenizer used by get_final_text), written below from their published behaviour.
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from mlperf_trt.accuracy import squad as metric
from mlperf_trt.data.squad import DEV_JSON, VOCAB, Squad
from mlperf_trt.data.squad_features import (
    FIRST_UNIQUE_ID,
    SquadExample,
    SquadGroundTruth,
    convert_examples_to_features,
    read_squad,
)
from mlperf_trt.data.squad_tokenizer import WordPieceTokenizer, basic_tokenize, read_vocab
from mlperf_trt.errors import AccuracyError, DataError

# -- plain reference tokenizer (test-only) --------------------------------------------------------

_SPECIALS = ("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")


def _ref_is_ws(c: str) -> bool:
    return c in " \t\n\r" or unicodedata.category(c) == "Zs"


def _ref_is_ctrl(c: str) -> bool:
    return c not in "\t\n\r" and unicodedata.category(c).startswith("C")


def _ref_is_punc(c: str) -> bool:
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def _ref_is_cjk(cp: int) -> bool:
    ranges = [
        (0x4E00, 0x9FFF),
        (0x3400, 0x4DBF),
        (0x20000, 0x2A6DF),
        (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F),
        (0x2B820, 0x2CEAF),
        (0xF900, 0xFAFF),
        (0x2F800, 0x2FA1F),
    ]
    return any(lo <= cp <= hi for lo, hi in ranges)


def ref_basic(text: str, *, nfc: bool, never: tuple[str, ...] = ()) -> list[str]:
    """BasicTokenizer(do_lower_case=True): transformers' (nfc=True) or Google's (nfc=False)."""
    kept = []
    for c in text:
        if ord(c) == 0 or ord(c) == 0xFFFD or _ref_is_ctrl(c):
            continue
        kept.append(" " if _ref_is_ws(c) else c)
    text = "".join(f" {c} " if _ref_is_cjk(ord(c)) else c for c in kept)
    if nfc:
        text = unicodedata.normalize("NFC", text)
    out: list[str] = []
    for token in text.split():
        if token in never:
            out.append(token)
            continue
        token = token.lower()
        token = "".join(
            c for c in unicodedata.normalize("NFD", token) if unicodedata.category(c) != "Mn"
        )
        word: list[str] = []
        for c in token:
            if _ref_is_punc(c):
                out += ["".join(word)] if word else []
                out.append(c)
                word = []
            else:
                word.append(c)
        out += ["".join(word)] if word else []
    return " ".join(out).split()


def ref_wordpiece(words: list[str], vocab: Mapping[str, int]) -> list[str]:
    out: list[str] = []
    for word in words:
        if len(word) > 100:
            out.append("[UNK]")
            continue
        pieces, start = [], 0
        while start < len(word):
            end, cur = len(word), None
            while start < end:
                piece = ("##" if start else "") + word[start:end]
                if piece in vocab:
                    cur = piece
                    break
                end -= 1
            if cur is None:
                pieces = ["[UNK]"]
                break
            pieces.append(cur)
            start = end
        out += pieces
    return out


def ref_tokenize(text: str, vocab: Mapping[str, int]) -> list[str]:
    """transformers BertTokenizer.tokenize: special tokens cut out, per-character lower-casing."""
    alt = "|".join(re.escape(s) for s in _SPECIALS)
    text = re.sub(f"({alt})|(.+?)", lambda m: m.group(1) or m.group(2).lower(), text)
    out: list[str] = []
    for part in re.split(f"({alt})", text):
        if part in _SPECIALS:
            out.append(part)
        elif part:
            out += ref_wordpiece(ref_basic(part, nfc=True, never=_SPECIALS), vocab)
    return out


# -- fixtures -------------------------------------------------------------------------------------

_BASE_VOCAB = ["[PAD]", *(f"[unused{i}]" for i in range(99)), "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _vocab(words: list[str]) -> dict[str, int]:
    return {t: i for i, t in enumerate([*_BASE_VOCAB, *words])}


_TRICKY_VOCAB = _vocab(
    [
        "the",
        "cafe",
        "play",
        "##ing",
        "##s",
        "hello",
        ",",
        ".",
        "?",
        "(",
        ")",
        "'",
        "a",
        "b",
        "ab",
        "##cd",
        "cd",
        "σ",
        "ς",
        "##σ",
        "##ς",
        "οδοσ",
        "οδος",
        "中",
        "国",
        "x",
        "##x",
        "naive",
        "e",
        "ü",
        "1",
        "##9",
        "##8",
        "\u8c48",
        "sep",
        "[",
        "]",
        "i",
    ]
)

TRICKY = [
    "Café naïve résumé ÉCOLE",  # accents stripped after lower-casing
    "Hello, (playing) the cafe's?",  # punctuation split, ## pieces
    "ΟΔΟΣ οδος Σ ΑΣ.",  # final sigma: per-character lower-casing gives σ
    "中国ab中x",  # CJK characters are words of their own
    "a\u0000b\u0007c\ufffdd\u200be",  # NUL, control, U+FFFD, zero-width (Cf) removed
    "a\u00a0b\u2009c\u3000d\u2028e\u2029f",  # Unicode spaces and line/paragraph separators
    "x" * 100 + " " + "x" * 101,  # 100 characters is a word, 101 is [UNK]
    "abzz qqq xq",  # unknown pieces: the whole word is [UNK]
    "a[SEP]b [CLS] [sep] [MASK]x",  # special tokens are cut out of the raw text
    "\uf900\uf901 \u2e55ab\u2e56 \u166dab \u1734ab \u0378ab",  # compat CJK, Unicode 14 vs library
    "e\u0301 \u0130i \u1e9e \ufb01 \u2126 1984",  # combining mark, dotted I, sharp S, ligature
    "\ue000ab \U000f0000 \U0010fffd",  # private use: control characters to the reference
    "",
    "   \t\n ",
]


def test_tokenizer_matches_reference_on_tricky_strings() -> None:
    tok = WordPieceTokenizer(_TRICKY_VOCAB)
    for text in TRICKY:
        assert tok.tokenize(text) == ref_tokenize(text, _TRICKY_VOCAB), repr(text)
        assert basic_tokenize(text) == ref_basic(text, nfc=False), repr(text)
    # The per-character decisions really differ from the library's own somewhere, e.g. it keeps
    # U+2E55 inside a word while Python 3.11 splits it off as punctuation.
    assert tok.tokenize("ab\u2e55cd") == ["ab", "[UNK]", "cd"]
    # Google's BasicTokenizer lower-cases whole words: a final capital sigma becomes "ς".
    assert basic_tokenize("ΟΔΟΣ") == ["οδος"] and tok.tokenize("ΟΔΟΣ") == ["οδοσ"]


def test_tokenizer_matches_reference_over_sampled_code_points() -> None:
    tok = WordPieceTokenizer(_TRICKY_VOCAB)
    cps = [cp for cp in range(0, 0x110000, 97) if not 0xD800 <= cp <= 0xDFFF]
    cps += list(range(0x80, 0x250)) + list(range(0x2000, 0x2070)) + list(range(0x2E40, 0x2E60))
    texts = [f"ab{chr(cp)}cd {chr(cp)} A{chr(cp)} Σ{chr(cp)}" for cp in cps]
    got = tok.encode(texts)
    bad = [
        t
        for t, ids in zip(texts, got, strict=True)
        if [tok.id_to_token[i] for i in ids] != ref_tokenize(t, _TRICKY_VOCAB)
    ]
    assert not bad, [hex(ord(t[2])) for t in bad[:10]]
    bad = [t for t in texts if basic_tokenize(t) != ref_basic(t, nfc=False)]
    assert not bad, [hex(ord(t[2])) for t in bad[:10]]


def test_encode_words_equals_word_by_word() -> None:
    tok = WordPieceTokenizer(_TRICKY_VOCAB)
    words = ["Hello,", "(playing)", "", "\u200b", "cafe's", "x" * 101]
    (ids, word_ids), (empty, _) = tok.encode_words([words, []])
    expected_ids, expected_words = [], []
    for n, w in enumerate(words):
        for t in ref_tokenize(w, _TRICKY_VOCAB):
            expected_ids.append(_TRICKY_VOCAB[t])
            expected_words.append(n)
    assert ids == expected_ids and word_ids == expected_words and empty == []


# -- features -------------------------------------------------------------------------------------


def _long_example_features() -> tuple[dict[str, int], object]:
    vocab = _vocab(["where", "?", *(f"w{i}" for i in range(600)), "play", "##ing", ",", "hello"])
    tok = WordPieceTokenizer(vocab)
    long_doc = tuple(f"w{i}" for i in range(600))
    short_doc = ("Hello,\u00a0playing", "w7", "w1")
    examples = [
        SquadExample("q0", "Where w5?", long_doc, ("w5",), 0),
        SquadExample("q1", "where PLAYING", short_doc, ("w7",), 1),
    ]
    return vocab, convert_examples_to_features(examples, tok)


def test_three_spans_with_doc_stride() -> None:
    vocab, feats = _long_example_features()
    f = feats  # type: ignore[assignment]
    assert len(f) == 4
    assert f.unique_id.tolist() == [FIRST_UNIQUE_ID + k for k in range(4)]
    assert f.example_index.tolist() == [0, 0, 0, 1]
    assert f.doc_span_index.tolist() == [0, 1, 2, 0]
    # query "where w5 ?" = 3 tokens: 384 - 3 - 3 = 378 document tokens per span, stride 128,
    # 600 tokens -> spans (0, 378), (128, 378), (256, 344).
    assert f.doc_offset.tolist() == [5, 5, 5, 5] and f.doc_len.tolist()[:3] == [378, 378, 344]
    head = [vocab["[CLS]"], vocab["where"], vocab["w5"], vocab["?"], vocab["[SEP]"]]
    for k, start in enumerate((0, 128, 256)):
        n = f.doc_len[k]
        row = f.input_ids[k]
        assert row[:5].tolist() == head
        assert row[5 : 5 + n].tolist() == [vocab[f"w{i}"] for i in range(start, start + n)]
        assert row[5 + n] == vocab["[SEP]"] and not row[6 + n :].any()
        assert f.token_to_orig_map(k) == {5 + p: start + p for p in range(n)}
    assert f.seq_len.tolist()[:3] == [384, 384, 350]
    mask, seg = f.input_mask(), f.segment_ids()
    assert mask[2].tolist() == [1] * 350 + [0] * 34
    assert seg[2].tolist() == [0] * 5 + [1] * 345 + [0] * 34
    # Max context, by hand: span 0 owns tokens 0..252 (377-p >= p-128), span 1 owns 253..380
    # (505-p + 3.78 > min(p-256, 599-p) + 3.44), span 2 owns 381..599.
    owner = np.full(600, -1)
    for k, start in enumerate((0, 128, 256)):
        ctx = f.token_is_max_context(k)
        for p in range(f.doc_len[k]):
            if ctx[5 + p]:
                assert owner[start + p] == -1
                owner[start + p] = k
    assert (owner[:253] == 0).all() and (owner[253:381] == 1).all() and (owner[381:] == 2).all()


def test_short_example_word_mapping() -> None:
    vocab, feats = _long_example_features()
    f = feats  # type: ignore[assignment]
    # "Hello,\xa0playing" is one doc token (U+00A0 is not the reference's whitespace) that the
    # tokenizer splits into hello , play ##ing; the query is lower-cased: where play ##ing.
    ids = f.input_ids[3][: f.seq_len[3]].tolist()
    words = [
        "[CLS]",
        "where",
        "play",
        "##ing",
        "[SEP]",
        "hello",
        ",",
        "play",
        "##ing",
        "w7",
        "w1",
        "[SEP]",
    ]
    assert ids == [vocab[w] for w in words]
    assert f.token_to_orig_map(3) == {5: 0, 6: 0, 7: 0, 8: 0, 9: 1, 10: 2}
    assert all(f.token_is_max_context(3).values())


def test_query_truncated_to_64_tokens() -> None:
    vocab = _vocab(["q", "d"])
    tok = WordPieceTokenizer(vocab)
    feats = convert_examples_to_features([SquadExample("a", "q " * 80, ("d",) * 5, (), 0)], tok)
    assert feats.doc_offset.tolist() == [66] and feats.seq_len.tolist() == [72]


# -- reading and errors ---------------------------------------------------------------------------


def _write_set(folder: Path, data: list[dict[str, object]], vocab: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DEV_JSON).write_text(json.dumps({"version": "1.1", "data": data}))
    (folder / VOCAB).write_text("".join(f"{t}\n" for t in [*_BASE_VOCAB, *vocab]))
    return folder


def _qa(qid: str, question: str, answers: list[str]) -> dict[str, object]:
    return {
        "id": qid,
        "question": question,
        "answers": [{"text": a, "answer_start": 0} for a in answers],
    }


def test_bad_inputs_name_the_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="vocab.txt"):
        read_vocab(tmp_path / "vocab.txt")
    (tmp_path / "v.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"lacks \[UNK\], \[CLS\], \[SEP\]"):
        read_vocab(tmp_path / "v.txt")
    with pytest.raises(DataError, match="dev-v1.1.json"):
        read_squad(tmp_path / DEV_JSON)
    (tmp_path / DEV_JSON).write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        read_squad(tmp_path / DEV_JSON)
    qas = [_qa("a", "q?", ["x"]), {"id": "b", "question": 7, "answers": []}]
    data = [
        {"title": "t", "paragraphs": [{"context": "c", "qas": []}]},
        {"title": "u", "paragraphs": [{"context": "c", "qas": qas}]},
    ]
    (tmp_path / DEV_JSON).write_text(json.dumps({"version": "1.1", "data": data}))
    with pytest.raises(DataError, match=r"data\[1\]\.paragraphs\[0\]\.qas\[1\]\.question is int"):
        read_squad(tmp_path / DEV_JSON)
    qas[1] = _qa("a", "again?", ["x"])
    (tmp_path / DEV_JSON).write_text(json.dumps({"version": "1.1", "data": data}))
    with pytest.raises(DataError, match="repeats"):
        read_squad(tmp_path / DEV_JSON)
    del data[0]["paragraphs"]
    (tmp_path / DEV_JSON).write_text(json.dumps({"data": data}))
    with pytest.raises(DataError, match=r"data\[0\]\.paragraphs is missing"):
        read_squad(tmp_path / DEV_JSON)
    raw = _write_set(tmp_path / "raw", [], ["x"])
    (raw / VOCAB).unlink()
    with pytest.raises(DataError, match="vocab"):
        Squad().prepare(raw, tmp_path / "cache", show_progress=False)


# -- metric on hand-made logs ---------------------------------------------------------------------


def _log(path: Path, entries: list[tuple[int, bytes]]) -> Path:
    items = [
        {"seq_id": n, "qsl_idx": i, "data": d.hex().upper()} for n, (i, d) in enumerate(entries)
    ]
    path.write_text("[\n" + ",\n".join(json.dumps(i) for i in items) + "\n]\n")  # SPEC §1.2
    return path


def _payload(seq: int, start: int, end: int, dtype: str = "<f4", pad: int = 384) -> bytes:
    logits = np.full((pad, 2), -10000.0)
    logits[:seq] = -5.0
    logits[:seq, 0] -= 0.01 * np.arange(seq)  # a gentle ramp: ties are not what is tested
    logits[:seq, 1] -= 0.01 * np.arange(seq)
    logits[start, 0], logits[end, 1] = 8.0, 7.0
    return logits.astype(dtype).tobytes()


@pytest.fixture
def fox(tmp_path: Path) -> Path:
    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "lazy",
        "dog",
        ".",
        "what",
        "who",
        "is",
        "?",
        "cafe",
    ]
    context = "The quick brown fox jumps over the lazy dog. Café!"
    qas = [
        _qa("q1", "What is brown?", ["brown fox", "a fox"]),
        _qa("q2", "Who is lazy?", ["the lazy dog"]),
        _qa("q3", "What is the cafe?", ["Café"]),
    ]
    return _write_set(
        tmp_path / "fox",
        [{"title": "Fox", "paragraphs": [{"context": context, "qas": qas}]}],
        words,
    )


def test_evaluate_known_em_and_f1(fox: Path, tmp_path: Path) -> None:
    truth = Squad().ground_truth(fox)
    # feature k: [CLS] query [SEP] the quick brown fox jumps over the lazy dog . cafe ! [SEP]
    off = truth.features.doc_offset.tolist()
    seq = truth.features.seq_len.tolist()
    assert truth.tokens(0, off[0], off[0] + 3) == ["the", "quick", "brown", "fox"]
    # q1 predicts "quick brown fox": EM 0, F1 2*(2/3*1)/(2/3+1) = 0.8 (best gold "brown fox").
    # q2 predicts "the lazy dog." -> get_final_text keeps "the lazy dog" (drops "."): EM 1.
    # q3 predicts "cafe" -> "Café" (the accent comes back from the original text): EM 1.
    log = _log(
        tmp_path / "log.json",
        [
            (0, _payload(seq[0], off[0] + 1, off[0] + 3)),
            (1, _payload(seq[1], off[1] + 6, off[1] + 8)),
            (2, _payload(seq[2], off[2] + 10, off[2] + 10)),
        ],
    )
    report = metric.evaluate(log, truth)
    assert metric.predictions(truth, metric.decode_log(log, 3)) == {
        "q1": "quick brown fox",
        "q2": "the lazy dog",
        "q3": "Café",
    }
    em, f1 = 200.0 / 3, (0.8 + 2) * 100.0 / 3
    assert report.line == json.dumps({"exact_match": em, "f1": f1})
    assert report.values == {"F1": f1, "exact_match": em}
    assert re.match(r"^\{\"exact_match\": [\d.]+, \"f1\": [\d.]+\}$", report.line)  # SPEC §1.3

    perfect = _log(
        tmp_path / "perfect.json",
        [
            (i, _payload(seq[i], off[i] + a, off[i] + b))
            for i, (a, b) in enumerate([(2, 3), (6, 8), (10, 10)])
        ],
    )
    assert metric.evaluate(perfect, truth).line == '{"exact_match": 100.0, "f1": 100.0}'

    # Payload length: the real tokens only, float16, or [2][384] transposed give the same line.
    short = _log(
        tmp_path / "short.json",
        [
            (i, _payload(seq[i], off[i] + a, off[i] + b, pad=seq[i]))
            for i, (a, b) in enumerate([(1, 3), (6, 8), (10, 10)])
        ],
    )
    assert metric.evaluate(short, truth).line == report.line
    half = _log(
        tmp_path / "half.json",
        [
            (i, _payload(seq[i], off[i] + a, off[i] + b, dtype="<f2"))
            for i, (a, b) in enumerate([(1, 3), (6, 8), (10, 10)])
        ],
    )
    assert metric.evaluate(half, truth, "float16").line == report.line
    transposed = _log(
        tmp_path / "t.json",
        [
            (
                i,
                np.frombuffer(_payload(seq[i], off[i] + a, off[i] + b), "<f4")
                .reshape(384, 2)
                .T.tobytes(),
            )
            for i, (a, b) in enumerate([(1, 3), (6, 8), (10, 10)])
        ],
    )
    assert metric.evaluate(transposed, truth, output_transposed=True).line == report.line


def test_evaluate_rules_and_missing_questions(fox: Path, tmp_path: Path) -> None:
    truth = Squad().ground_truth(fox)
    off, seq = truth.features.doc_offset.tolist(), truth.features.seq_len.tolist()
    # Only q2 is logged: q1 and q3 get the reference's "empty" and count as 0 of 3 questions.
    only = _log(tmp_path / "only.json", [(1, _payload(seq[1], off[1] + 6, off[1] + 7))])
    report = metric.evaluate(only, truth)
    assert report.values["exact_match"] == pytest.approx(0.0)
    # "the lazy" vs "the lazy dog": articles go, P = 1, R = 1/2, F1 = 2/3
    assert report.values["F1"] == pytest.approx(100.0 * (2 / 3) / 3)
    assert report.details["no_span"] == 2
    # A start in the question, or an end before the start, is never chosen: q1 keeps its end
    # ("fox") with the best document start (the ramp's first, "The"); q2 keeps its start ("over")
    # with the best end at or after it (the ramp's highest: "over" itself).
    bad = _log(
        tmp_path / "bad.json",
        [(0, _payload(seq[0], 2, off[0] + 3)), (1, _payload(seq[1], off[1] + 5, off[1] + 2))],
    )
    preds = metric.predictions(truth, metric.decode_log(bad, 3))
    assert preds["q1"] == "The quick brown fox" and preds["q2"] == "over"
    assert preds["q3"] == metric.NO_ANSWER
    with pytest.raises(AccuracyError, match="outside"):
        metric.evaluate(_log(tmp_path / "o.json", [(3, _payload(5, 1, 1))]), truth)
    with pytest.raises(AccuracyError, match="whole number"):
        metric.evaluate(_log(tmp_path / "odd.json", [(0, b"\x00" * 12)]), truth)
    with pytest.raises(AccuracyError, match="no entries"):
        metric.evaluate(_log(tmp_path / "e.json", []), truth)
    with pytest.raises(AccuracyError, match="output_dtype"):
        metric.evaluate(only, truth, "bfloat16")


def test_get_final_text_alignment() -> None:
    assert metric.get_final_text("steve smith", "Steve Smith's") == "Steve Smith"
    assert metric.get_final_text("1895", "(1895-1943).") == "1895"
    assert metric.get_final_text("japan", "Japanese") == "Japan"
    assert metric.get_final_text("xyz", "Abc") == "Abc"  # not found: the original text
    assert metric.get_final_text("ab", "a\u200bb") == "a\u200bb"  # lengths differ: original


def test_score_is_evaluate_v11() -> None:
    data = [
        {
            "paragraphs": [
                {
                    "qas": [
                        {"id": "a", "answers": [{"text": "The Cat!"}]},
                        {"id": "b", "answers": [{"text": "x y z"}]},
                    ]
                }
            ]
        }
    ]
    assert metric.score(data, {"a": "cat", "b": "y z w"}) == {
        "exact_match": 50.0,
        "f1": (1 + 2 * (2 / 3) * (2 / 3) / (4 / 3)) * 50.0,
    }
    assert metric.score(data, {"a": "cat"}) == {"exact_match": 50.0, "f1": 50.0}  # b unanswered


# -- synthetic set, cache, calibration ------------------------------------------------------------


def _fake_fp32(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Scores one document span high per feature (chosen from its ids) over a gentle ramp."""
    ids, seg = feeds["input_ids"], feeds["segment_ids"]
    n = ids.shape[0]
    doc = (seg == 1) & (np.roll(seg, -1, axis=1) == 1)  # document tokens (not the final [SEP])
    pos = np.arange(384, dtype=np.float32)
    start = np.where(doc, -0.001 * pos, -50.0).astype(np.float32)
    end = start.copy()
    for k in range(n):
        where = np.flatnonzero(doc[k])
        s = where[int(ids[k].sum()) % len(where)]
        start[k, s] += 5.0
        end[k, min(s + int(ids[k, 1]) % 4, where[-1])] += 5.0
    return {"output_start_logits": start, "output_end_logits": end}


def test_synthesize_prepare_and_perfect_log(tmp_path: Path) -> None:
    squad = Squad()
    raw = tmp_path / "raw"
    result = squad.synthesize(raw, 120, 3, _fake_fp32, show_progress=False)
    vocab_lines = (raw / VOCAB).read_text().split("\n")[:-1]
    assert len(vocab_lines) <= 30522 and len(set(vocab_lines)) == len(vocab_lines)
    assert [vocab_lines[i] for i in (0, 1, 99, 100, 101, 102, 103)] == [
        "[PAD]",
        "[unused0]",
        "[unused98]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
    ]
    assert any(t.startswith("##") for t in vocab_lines)
    dev = json.loads((raw / DEV_JSON).read_text())
    assert dev["version"] == "1.1" and all(a["title"] for a in dev["data"])
    qas = [qa for a in dev["data"] for p in a["paragraphs"] for qa in p["qas"]]
    assert len(qas) == 120 and len({qa["id"] for qa in qas}) == 120
    for article in dev["data"]:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                ans = qa["answers"][0]
                assert p["context"][ans["answer_start"] :].startswith(ans["text"]) and ans["text"]
    assert "synthetic" in (raw / "README.txt").read_text().lower()

    # FP32 matches every gold answer exactly; evaluate-v1.1 gives F1 0 to an answer that is only
    # punctuation or articles (no tokens left), so F1 = 100 * (1 - share of those).
    def tokens(text: str) -> list[str]:
        text = "".join(c for c in text.lower() if c not in string.punctuation)
        return [w for w in text.split() if w not in ("a", "an", "the")]

    empty = sum(1 for qa in qas if not tokens(qa["answers"][0]["text"]))
    assert result == {
        "fp32_f1": pytest.approx(100.0 * (120 - empty) / 120),
        "fp32_exact_match": 100.0,
    }

    prepared = squad.prepare(raw, tmp_path / "cache", show_progress=False)
    truth = squad.ground_truth(tmp_path / "cache")
    assert prepared.tensor_names == ["input_ids", "input_mask", "segment_ids"]
    assert prepared.array("input_ids").dtype == np.int64 and len(prepared) == len(truth.features)
    tok = WordPieceTokenizer.from_file(raw / VOCAB)
    assert tok.unk_id not in prepared.array("input_ids")  # the vocabulary covers every word
    lengths = squad.sequence_lengths(prepared)
    assert (lengths == prepared.array("input_mask").sum(axis=1)).all()
    assert lengths.min() < 150 and lengths.max() == 384 and truth.features.doc_span_index.max() >= 1
    # The cache is reused, and a changed vocabulary rebuilds it.
    created = prepared.manifest.created
    assert squad.prepare(raw, tmp_path / "cache", show_progress=False).manifest == prepared.manifest
    with (raw / VOCAB).open("a") as handle:
        handle.write("##extra\n")
    rebuilt = squad.prepare(raw, tmp_path / "cache", show_progress=False)
    assert rebuilt.manifest.source_files_hash != prepared.manifest.source_files_hash
    assert created and squad.open(tmp_path / "cache").count == len(truth.features)

    out = _fake_fp32(prepared.batch(range(len(prepared))))
    entries = [
        (
            i,
            np.stack([out["output_start_logits"][i], out["output_end_logits"][i]], 1)
            .astype("<f4")
            .tobytes(),
        )
        for i in range(len(prepared))
    ]
    report = metric.evaluate(_log(tmp_path / "perfect.json", entries), squad.ground_truth(raw))
    assert report.values == {"F1": result["fp32_f1"], "exact_match": 100.0}


def test_synthesize_refuses_a_real_data_set(tmp_path: Path) -> None:
    (tmp_path / DEV_JSON).write_text("{}")
    with pytest.raises(DataError, match="not empty"):
        Squad().synthesize(tmp_path, 5, 0, _fake_fp32, show_progress=False)


def test_calibration_indices(tmp_path: Path) -> None:
    squad = Squad()
    picked = squad.calibration_indices(10833, 100, seed=1)
    assert len(picked) == 100 == len(set(picked)) and picked == sorted(picked)
    assert picked == squad.calibration_indices(10833, 100, seed=1) and max(picked) < 10833
    assert squad.calibration_indices(50) == list(range(50))
    (tmp_path / "bert_calibration_features.txt").write_text("4547 9556 2033\n458")
    assert squad.calibration_indices(10833, raw_dir=tmp_path) == [458, 2033, 4547, 9556]
    with pytest.raises(DataError, match="feature index"):
        squad.calibration_indices(1000, raw_dir=tmp_path)


def test_max_context_and_earlier_feature_win() -> None:
    vocab, feats = _long_example_features()
    tok = WordPieceTokenizer(vocab)
    examples = (SquadExample("q0", "", tuple(f"w{i}" for i in range(600)), ("w300",), 0),)
    truth = SquadGroundTruth("1.1", examples, feats, tok.id_to_token)  # type: ignore[arg-type]

    def logits(bumps: dict[int, float]) -> np.ndarray:
        arr = np.full((384, 2), -100.0)
        for pos, value in bumps.items():
            arr[pos] = value
        return arr

    # Token 290 scores highest in span 0, but span 1 is its max-context span: only span 1's
    # candidates count, so token 300 (from span 1) wins. Doc token t sits at 5 + t - span start.
    best = {0: logits({5 + 290: 9.0}), 1: logits({5 + 300 - 128: 8.0})}
    assert metric.predictions(truth, best)["q0"] == "w300"
    # Equal scores in spans 1 and 2 (tokens 260 and 400, each in its max-context span): the
    # reference's stable sort keeps the earlier feature.
    tie = {1: logits({5 + 260 - 128: 8.0}), 2: logits({5 + 400 - 256: 8.0})}
    assert metric.predictions(truth, tie)["q0"] == "w260"
