"""SQuAD v1.1 dev (BERT-Large, SPEC §2.4): reader, reference features, cache, synthetic sets.

Raw layout: `dev-v1.1.json` (the official file) and the model's WordPiece `vocab.txt` in one
folder. Sample i is feature i of the reference convert_examples_to_features over the questions in
file order (SPEC §1.1: 10,833 features for the 10,570 official questions).

The prepared cache (data/cache.py) holds the three model inputs as int64 [count, 384] arrays:
`input_ids`, `input_mask`, `segment_ids`. Beside them, `features.npz` holds the post-processing
metadata (unique ids, example index, span offsets, token_to_orig_map, max-context flags) plus the
hashes of the JSON and vocabulary it was made from; it is written before the manifest, so a folder
with a manifest always has it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlperf_trt.data.cache import (
    PreparedSamples,
    open_versioned,
    prepare_hint,
    prepared_dir,
    reusable_cache,
    seeded_subset,
    write_cache,
)
from mlperf_trt.data.squad_features import (
    MAX_SEQ_LEN,
    SquadExample,
    SquadFeatures,
    SquadGroundTruth,
    convert_examples_to_features,
    read_squad,
)
from mlperf_trt.data.squad_synthetic import make_text, vocab_lines
from mlperf_trt.data.squad_tokenizer import WordPieceTokenizer, read_vocab
from mlperf_trt.data.synthetic_target import begin_synthetic
from mlperf_trt.errors import DataError
from mlperf_trt.progress import Progress
from mlperf_trt.results.layout import atomic_write_text

__all__ = [
    "CALIBRATION_LISTS",
    "DEV_JSON",
    "FEATURES_FILE",
    "PREPROCESS_VERSION",
    "TENSORS",
    "VOCAB",
    "Squad",
    "SquadExample",
    "SquadFeatures",
    "SquadGroundTruth",
]

log = logging.getLogger(__name__)

DEV_JSON = "dev-v1.1.json"
VOCAB = "vocab.txt"
FEATURES_FILE = "features.npz"
TENSORS = ("input_ids", "input_mask", "segment_ids")  # SPEC §2.4: int64 [N, 384] model inputs
# Bump when the features change: caches of another version are rebuilt.
PREPROCESS_VERSION = "squad-v1.1-features-384-128-64-v1"
# The official MLPerf lists (mlcommons/inference calibration/SQuAD-v1.1): 100 feature indices of
# dev-v1.1.json (whitespace separated), or 100 question ids. Copy one into the raw folder to use it.
CALIBRATION_LISTS = ("bert_calibration_features.txt", "bert-calibration.txt")
CALIBRATION_QAS_IDS = "bert_calibration_qas_ids.txt"
CALIBRATION_SIZE = 100
README = "README.txt"
_README_MARK = "Synthetic SQuAD-v1.1-format set written by mlperf_trt"
_MODEL_BATCH = 16
_SAMPLE_SHAPE = (MAX_SEQ_LEN,)


def _prepare_hint(raw_dir: Path | str) -> str:
    return prepare_hint("bert", raw_dir)


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None


class Squad:
    """The SQuAD v1.1 dev set (the `Dataset` seam of DESIGN.md §3)."""

    name = "squad-v1.1-dev"
    tensor_names = TENSORS
    sample_shape = _SAMPLE_SHAPE

    # -- raw data ---------------------------------------------------------------------------------

    def _vocab_path(self, raw_dir: Path, vocab: Path | None) -> Path:
        return Path(vocab) if vocab is not None else Path(raw_dir) / VOCAB

    def convert(
        self, raw_dir: Path, *, vocab: Path | None = None
    ) -> tuple[str, list[SquadExample], WordPieceTokenizer, SquadFeatures]:
        """(version, examples, tokenizer, features) of raw_dir, computed in memory."""
        raw_dir = Path(raw_dir)
        version, examples = read_squad(raw_dir / DEV_JSON)
        tokenizer = WordPieceTokenizer.from_file(self._vocab_path(raw_dir, vocab))
        return version, examples, tokenizer, convert_examples_to_features(examples, tokenizer)

    def features(self, raw_dir_or_cache: Path, *, vocab: Path | None = None) -> SquadGroundTruth:
        """Examples + features for the post-processing, from a prepared cache folder (fast) or a
        raw folder (its default cache when complete, else converted in memory)."""
        return self.ground_truth(raw_dir_or_cache, vocab=vocab)

    def ground_truth(self, raw_dir: Path, *, vocab: Path | None = None) -> SquadGroundTruth:
        """The metric's ground truth: questions with gold answers, and the features by sample.

        `raw_dir` may also be a prepared cache folder: its features are then read, not rebuilt.
        """
        path = Path(raw_dir)
        if (path / "manifest.json").is_file() and not (path / DEV_JSON).is_file():
            return self._from_cache(self.open(path), vocab)
        cache = self.default_cache_dir(path)
        with contextlib.suppress(DataError):
            reusable = self._reusable(cache, path, self._vocab_path(path, vocab))
            if reusable is not None:
                return self._from_cache(reusable, vocab)
        version, examples, tokenizer, feats = self.convert(path, vocab=vocab)
        return SquadGroundTruth(
            version, tuple(examples), feats, tokenizer.id_to_token, str(path / DEV_JSON)
        )

    def _from_cache(self, samples: PreparedSamples, vocab: Path | None) -> SquadGroundTruth:
        raw = Path(samples.manifest.source)
        meta = self._read_features_file(samples)
        vocab_path = Path(vocab) if vocab is not None else Path(str(meta["vocab_path"]))
        if _sha256(vocab_path) != samples.manifest.source_files_hash:
            raise DataError(
                f"{vocab_path} changed since {samples.path} was prepared: run"
                f" `{_prepare_hint(raw)}` again"
            )
        if _sha256(raw / DEV_JSON) != samples.manifest.source_hash:
            raise DataError(
                f"{raw / DEV_JSON} changed since {samples.path} was prepared: run"
                f" `{_prepare_hint(raw)}` again"
            )
        version, examples = read_squad(raw / DEV_JSON)
        feats = SquadFeatures.from_arrays(
            meta, np.asarray(samples.array("input_ids")), samples.path / FEATURES_FILE
        )
        tokenizer_tokens = WordPieceTokenizer(read_vocab(vocab_path)).id_to_token
        return SquadGroundTruth(version, tuple(examples), feats, tokenizer_tokens, str(raw))

    # -- prepared cache ---------------------------------------------------------------------------

    def default_cache_dir(self, raw_dir: Path) -> Path:
        return prepared_dir("squad", raw_dir)

    def open(self, out_dir: Path) -> PreparedSamples:
        """The prepared cache in out_dir; a DataError saying what to run when missing or stale."""
        samples = open_versioned(out_dir, self.name, PREPROCESS_VERSION, "bert")
        self._read_features_file(samples)
        return samples

    def _read_features_file(self, samples: PreparedSamples) -> dict[str, Any]:
        path = samples.path / FEATURES_FILE
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays: dict[str, Any] = {k: npz[k] for k in npz.files}
        except FileNotFoundError:
            raise DataError(
                f"{path} is missing; delete {samples.path} and run"
                f" `{_prepare_hint(samples.manifest.source)}`"
            ) from None
        except (OSError, ValueError) as err:
            raise DataError(f"{path} cannot be read ({err}); delete {samples.path}") from err
        m = samples.manifest
        if (
            str(arrays.get("source_hash", "")) != m.source_hash
            or str(arrays.get("vocab_hash", "")) != m.source_files_hash
            or int(arrays["unique_id"].shape[0]) != m.count
        ):
            raise DataError(
                f"{path} does not belong to the samples in {samples.path}; delete the folder and"
                f" run `{_prepare_hint(m.source)}`"
            )
        arrays["vocab_path"] = str(arrays.get("vocab_path", ""))
        return arrays

    def prepare(
        self,
        raw_dir: Path,
        out_dir: Path | None = None,
        *,
        vocab: Path | None = None,
        show_progress: bool = True,
    ) -> PreparedSamples:
        """Convert raw_dir/dev-v1.1.json into the three input tensors + features.npz (reused
        when the cache is complete and was made from the same JSON and vocabulary)."""
        raw_dir = Path(raw_dir)
        vocab_path = self._vocab_path(raw_dir, vocab)
        out_dir = Path(out_dir) if out_dir is not None else self.default_cache_dir(raw_dir)
        existing = self._reusable(out_dir, raw_dir, vocab_path)
        if existing is not None:
            log.info("reusing the prepared %s samples in %s", self.name, out_dir)
            return existing
        _, _, _, feats = self.convert(raw_dir, vocab=vocab_path)
        source_hash, vocab_hash = _sha256(raw_dir / DEV_JSON), _sha256(vocab_path)
        out_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (out_dir / "manifest.json").unlink()  # not a complete cache until write_cache ends
        partial = out_dir / f".{FEATURES_FILE}.partial"
        with open(partial, "wb") as handle:
            arrays: dict[str, Any] = {
                **feats.to_arrays(),
                "source_hash": np.array(source_hash),
                "vocab_hash": np.array(vocab_hash),
                "vocab_path": np.array(str(vocab_path.resolve())),
            }
            np.savez(handle, **arrays)
        partial.replace(out_dir / FEATURES_FILE)
        masks, segments = feats.input_mask(), feats.segment_ids()

        def fill(i: int) -> list[np.ndarray]:
            return [feats.input_ids[i], masks[i], segments[i]]

        return write_cache(
            out_dir,
            dataset=self.name,
            version=PREPROCESS_VERSION,
            source=str(raw_dir.resolve()),
            source_hash=source_hash,
            source_files_hash=vocab_hash,
            tensors=[(name, "int64", _SAMPLE_SHAPE) for name in TENSORS],
            count=len(feats),
            fill=fill,
            threads=2,
            show_progress=show_progress,
        )

    def _reusable(self, out_dir: Path, raw_dir: Path, vocab_path: Path) -> PreparedSamples | None:
        samples = reusable_cache(
            out_dir,
            dataset=self.name,
            version=PREPROCESS_VERSION,
            source=str(Path(raw_dir).resolve()),
            source_hash=_sha256(Path(raw_dir) / DEV_JSON),
            source_files_hash=_sha256(vocab_path),
            tensors=tuple((n, "int64", _SAMPLE_SHAPE) for n in TENSORS),
        )
        if samples is None:
            return None
        try:
            self._read_features_file(samples)
        except DataError as err:
            log.warning("rebuilding %s: %s", out_dir, err)
            return None
        return samples

    def sequence_lengths(self, prepared: PreparedSamples) -> np.ndarray:
        """Real tokens per sample (= sum of input_mask), int64 [count]: for length batching."""
        lengths: np.ndarray = np.asarray(prepared.array("input_mask")).sum(axis=1, dtype=np.int64)
        return lengths

    # -- calibration ------------------------------------------------------------------------------

    def calibration_indices(
        self,
        count: int,
        size: int = CALIBRATION_SIZE,
        seed: int = 0,
        *,
        raw_dir: Path | None = None,
    ) -> list[int]:
        """Sorted sample (feature) indices to calibrate INT8 on.

        With `raw_dir` holding an official MLPerf list (100 feature indices, or 100 question ids
        whose features are used), that list; otherwise a seeded subset of `size` of range(count).
        """
        if raw_dir is not None:
            for list_name in CALIBRATION_LISTS:
                path = Path(raw_dir) / list_name
                if path.is_file():
                    return self._feature_list(path, count)
            path = Path(raw_dir) / CALIBRATION_QAS_IDS
            if path.is_file():
                return self._qas_id_list(path, Path(raw_dir))
        return seeded_subset(count, size, seed)

    def _feature_list(self, path: Path, count: int) -> list[int]:
        indices: set[int] = set()
        for word in path.read_text(encoding="utf-8").split():
            if not word.isdigit() or int(word) >= count:
                raise DataError(
                    f"{path}: {word!r} is not a feature index 0..{count - 1}; the official list"
                    " indexes the features of the official dev-v1.1.json: delete it to calibrate"
                    " on a seeded subset"
                )
            indices.add(int(word))
        return sorted(indices)

    def _qas_id_list(self, path: Path, raw_dir: Path) -> list[int]:
        truth = self.ground_truth(raw_dir)
        by_id = {e.qas_id: n for n, e in enumerate(truth.examples)}
        wanted: set[int] = set()
        for word in path.read_text(encoding="utf-8").split():
            if word not in by_id:
                raise DataError(
                    f"{path}: question id {word} is not in {raw_dir / DEV_JSON}; use the list"
                    " with the official set, or delete it to calibrate on a seeded subset"
                )
            wanted.add(by_id[word])
        mask = np.isin(truth.features.example_index, sorted(wanted))
        return [int(i) for i in np.flatnonzero(mask)]

    # -- synthetic set ----------------------------------------------------------------------------

    def synthesize(
        self,
        raw_dir: Path,
        count: int,
        seed: int,
        model_fn: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]],
        show_progress: bool = True,
    ) -> dict[str, float]:
        """Write a synthetic dev-v1.1.json + vocab.txt (official layouts) with `count` questions.

        Gold answers are the predictions of `model_fn` (the FP32 model: feeds of up to 16
        features, the three int64 [n, 384] inputs; returns output_start_logits and
        output_end_logits [n, 384]) decoded by the metric's own post-processing. Returns
        {"fp32_f1", "fp32_exact_match"}: those predictions scored against the written file.
        EM is 100 by construction (less where no span is valid); F1 is lower by the share that is
        only punctuation or articles (evaluate-v1.1 leaves them no token: F1 0) and of questions
        with no valid span in the n-best (their gold is the first context word, not "empty").
        dev-v1.1.json is written last: a folder without it is not a (complete) data set.
        """
        from mlperf_trt.accuracy import squad as squad_metric  # the metric decodes the answers

        raw_dir = Path(raw_dir)
        begin_synthetic(
            raw_dir, mark=_README_MARK, list_file=DEV_JSON, count=count, seed=seed, unit="questions"
        )
        text = make_text(count, seed)
        lines = vocab_lines(text.words)
        atomic_write_text(raw_dir / VOCAB, "".join(f"{t}\n" for t in lines))
        tokenizer = WordPieceTokenizer.from_file(raw_dir / VOCAB)

        dataset: dict[str, Any] = {"version": "1.1", "data": []}
        examples: list[SquadExample] = []
        paragraph = 0
        for title, paragraphs in text.articles:
            article: dict[str, Any] = {"title": title, "paragraphs": []}
            for par in paragraphs:
                doc_tokens = tuple(par.context.split(" "))
                qas = [{"id": qid, "question": q, "answers": []} for qid, q in par.questions]
                article["paragraphs"].append({"context": par.context, "qas": qas})
                examples += [
                    SquadExample(qid, q, doc_tokens, (), paragraph) for qid, q in par.questions
                ]
                paragraph += 1
            dataset["data"].append(article)
        feats = convert_examples_to_features(examples, tokenizer)
        truth = SquadGroundTruth("1.1", tuple(examples), feats, tokenizer.id_to_token)
        logits = self._run_model(feats, model_fn, show_progress)
        answers = squad_metric.predict(truth, logits)

        by_id: dict[str, dict[str, Any]] = {}
        offsets: dict[str, list[int]] = {}
        for article in dataset["data"]:
            for par in article["paragraphs"]:
                starts, pos = [], 0
                for token in par["context"].split(" "):
                    starts.append(pos)
                    pos += len(token) + 1
                for qa in par["qas"]:
                    by_id[qa["id"]] = qa
                    offsets[qa["id"]] = starts
        fallback = 0
        for example, answer in zip(examples, answers, strict=True):
            qa, starts = by_id[example.qas_id], offsets[example.qas_id]
            if answer.doc_start < 0:  # no valid span among the n-best: the first word instead
                fallback += 1
                qa["answers"] = [{"text": example.doc_tokens[0], "answer_start": 0}]
                continue
            context = " ".join(example.doc_tokens)
            start = context.find(answer.text, starts[answer.doc_start])
            qa["answers"] = [{"text": answer.text, "answer_start": start}]
        dev_text = json.dumps(dataset, ensure_ascii=False)
        predictions = {e.qas_id: a.text for e, a in zip(examples, answers, strict=True)}
        scores = squad_metric.score(json.loads(dev_text)["data"], predictions)
        atomic_write_text(
            raw_dir / README,
            f"{_README_MARK}.\n\n"
            f"Questions: {count} over {paragraph} paragraphs in {len(text.articles)} articles,"
            f" seed {seed}: seeded pseudo-words, not English. {len(feats)} features"
            " (max_seq_len 384, doc_stride 128, max_query_len 64).\n"
            f"{VOCAB}: WordPiece vocabulary in the BERT uncased layout ({len(lines)} lines).\n\n"
            f"Answers ({DEV_JSON}, one per question): the predictions of `"
            f"{getattr(model_fn, '__qualname__', type(model_fn).__name__)}` decoded by the"
            " reference post-processing (n-best 20, max answer length 30, get_final_text). When"
            " that function is the FP32 model, a run's F1 on this set is its agreement with FP32"
            f" (FP32 scores F1 {scores['f1']:.3f}, exact match {scores['exact_match']:.3f};"
            f" {fallback} questions without a valid span got the first context word; answers"
            " that are only punctuation or articles score F1 0 in evaluate-v1.1).\n",
        )
        atomic_write_text(raw_dir / DEV_JSON, dev_text + "\n")
        return {"fp32_f1": scores["f1"], "fp32_exact_match": scores["exact_match"]}

    def _run_model(
        self,
        feats: SquadFeatures,
        model_fn: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]],
        show_progress: bool,
    ) -> dict[int, np.ndarray]:
        masks, segments = feats.input_mask(), feats.segment_ids()
        logits: dict[int, np.ndarray] = {}
        progress = Progress("label with model", total=len(feats)) if show_progress else None
        for start in range(0, len(feats), _MODEL_BATCH):
            sl = slice(start, min(start + _MODEL_BATCH, len(feats)))
            n = sl.stop - sl.start
            out = model_fn(
                {
                    "input_ids": np.ascontiguousarray(feats.input_ids[sl]),
                    "input_mask": np.ascontiguousarray(masks[sl]),
                    "segment_ids": np.ascontiguousarray(segments[sl]),
                }
            )
            try:
                s = np.asarray(out["output_start_logits"], dtype=np.float32)
                e = np.asarray(out["output_end_logits"], dtype=np.float32)
            except (KeyError, TypeError) as err:
                raise DataError(
                    f"model_fn returned {type(out).__name__} without {err}: expected a mapping"
                    " with output_start_logits and output_end_logits"
                ) from None
            if s.shape != (n, MAX_SEQ_LEN) or e.shape != (n, MAX_SEQ_LEN):
                raise DataError(
                    f"model_fn returned logits {s.shape} / {e.shape} for {n} features: expected"
                    f" float32 [{n}, {MAX_SEQ_LEN}] each"
                )
            for k in range(n):
                logits[sl.start + k] = np.stack([s[k], e[k]], axis=1)
            if progress is not None:
                progress.update(sl.stop)
        if progress is not None:
            progress.update(len(feats), force=True)
            progress.close()
        return logits
