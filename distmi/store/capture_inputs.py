"""What a capture feeds the model: row-addressable inputs with their targets.

An :class:`InputsRef` names the inputs; :func:`open_inputs` opens them in a process as an
:class:`Inputs` object that yields the batches of any row range ``[start, stop)``, so shards of
one capture can run in different processes and give the same batches as one process:

- a registered set (:func:`capture_input_sets`): ``concept_texts`` (generated sentences with
  exact concept labels and per-token concept words), ``iris``, ``digits``;
- a file: Parquet, CSV or JSON lines with a text column or numeric columns (other columns
  become targets), ``.npy`` arrays, ``.pt`` tensors (``weights_only``);
- a factory ``package.module:function`` returning texts (a list of strings or
  :class:`TextInputs`), an array/tensor, a dict of tensors, a map-style ``Dataset`` or a
  :class:`~distmi.store.capture.CaptureSource` wrapping one of these with targets.

**Texts** are tokenized batch by batch with the model's tokenizer: padded to the longest text of
the batch and truncated to ``max_length`` tokens (default: the tokenizer's limit, at most 512),
giving ``input_ids``, ``attention_mask`` (and ``token_type_ids``). A batch depends only on its
rows, so a shard tokenizes exactly what one process would.

**Per-token targets** of texts come from word lists: ``{"concept_word": ["football", ...]}``
marks every token inside a listed word or phrase (whole words, case-insensitive) True;
``{"token_topic": {"sports": [...], "food": [...]}}`` gives each token the label of the list
its word is in, else ``"none"``. Special tokens ([CLS], [SEP]) are never inside a word. They
are (batch, tokens) arrays carried with each batch and stored per token row; captures with one
row per input leave them out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distmi.core.errors import InvalidInputError, InvalidParameterError
from distmi.store.batches import Batch, make_source
from distmi.store.capture_models import import_target

TEXT_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")
ARRAY_SUFFIXES = (".npy", ".pt", ".pth")
_MAX_TOKENS = 512
_COUNT_CHUNK = 4096


@dataclass(frozen=True)
class TextInputs:
    """Texts with per-text targets and per-token word lists (what a text factory returns)."""

    texts: Sequence[str]
    targets: Mapping[str, Any] | None = None
    token_targets: Mapping[str, Any] | None = None
    sample_ids: Any = None
    target_kinds: Mapping[str, str] | None = None


@dataclass(frozen=True)
class InputsRef:
    """Which inputs a capture runs (see module docstring).

    Attributes:
        kind: ``"set"``, ``"file"`` or ``"factory"``.
        target: the set's name, the file's path, or ``module:function`` (or a callable).
        params: keyword arguments of the set or factory (e.g. ``n``, ``seed``).
        text_column: the file's column of texts.
        columns: the file's numeric input columns.
        targets: the file's target columns (None: every other column).
        token_targets: per-token word lists (texts only), added to the set's own.
        max_length: tokens kept per text (texts only).
    """

    kind: str
    target: Any
    params: Mapping[str, Any] = field(default_factory=dict)
    text_column: str | None = None
    columns: tuple[str, ...] | None = None
    targets: tuple[str, ...] | None = None
    token_targets: Mapping[str, Any] = field(default_factory=dict)
    max_length: int | None = None


_SETS: dict[str, str | Callable[..., Any]] = {
    "concept_texts": "distmi.examples.texts:concept_text_inputs",
    "iris": "distmi.examples.train_models:iris_source",
    "digits": "distmi.examples.train_models:digits_source",
}


def register_input_set(name: str, factory: str | Callable[..., Any], *,
                       overwrite: bool = False) -> None:
    """Make ``inputs: {set: name}`` call ``factory(**params)``."""
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(f"an input set needs a non-empty name, got {name!r}.")
    if name in _SETS and not overwrite:
        raise InvalidParameterError(
            f"input set {name!r} is already registered; pass overwrite=True to replace it.")
    _SETS[name] = factory


def capture_input_sets() -> list[str]:
    """Registered input set names."""
    return sorted(_SETS)


def check_input_set(name: str) -> str:
    if name not in _SETS:
        import difflib

        close = difflib.get_close_matches(name, capture_input_sets(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InvalidParameterError(
            f"unknown input set {name!r}; registered: {capture_input_sets()}.{hint}")
    return name


class Inputs:
    """Opened inputs: ``n`` rows, their targets, and the batches of any row range.

    Attributes:
        n: number of input rows.
        is_text: whether rows are texts (tokenized per batch).
        targets: per-row targets (dict of arrays) or None.
        sample_ids: ids of the rows or None (``0..n-1``).
        target_kinds: kinds overriding inference, or None.
    """

    def __init__(self, *, n: int, is_text: bool, targets: Any, sample_ids: Any,
                 target_kinds: Mapping[str, str] | None) -> None:
        self.n = n
        self.is_text = is_text
        self.targets = targets
        self.sample_ids = sample_ids
        self.target_kinds = dict(target_kinds) if target_kinds else None

    def batches(self, start: int, stop: int, batch_size: int) -> Iterator[Batch]:
        raise NotImplementedError

    def token_counts(self, start: int, stop: int) -> np.ndarray:
        """Unmasked tokens of rows ``[start, stop)`` (for captures with one row per token)."""
        raise InvalidInputError(
            "pooling 'tokens' (one row per token) needs inputs with an attention mask: texts, "
            "or a dict of tensors with 'attention_mask'.")


class ArrayInputs(Inputs):
    """A tensor/array, a dict of tensors or a map-style Dataset, sliced by rows."""

    def __init__(self, data: Any, targets: Any = None, sample_ids: Any = None,
                 target_kinds: Mapping[str, str] | None = None) -> None:
        self.data = _row_addressable(data)
        n = len(next(iter(self.data.values()))) if isinstance(self.data, Mapping) else len(self.data)
        if n == 0:
            raise InvalidInputError("the inputs hold no rows; pass at least one sample.")
        super().__init__(n=n, is_text=False, targets=targets, sample_ids=sample_ids,
                         target_kinds=target_kinds)

    def _slice(self, start: int, stop: int) -> Any:
        if isinstance(self.data, Mapping):
            return {k: v[start:stop] for k, v in self.data.items()}
        return self.data[start:stop]

    def batches(self, start: int, stop: int, batch_size: int) -> Iterator[Batch]:
        yield from make_source(self._slice(start, stop), batch_size).iter_from(0)

    def token_counts(self, start: int, stop: int) -> np.ndarray:
        if not isinstance(self.data, Mapping) or "attention_mask" not in self.data:
            return super().token_counts(start, stop)
        mask = self.data["attention_mask"][start:stop]
        mask = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
        return (mask != 0).sum(axis=1).astype(np.int64)


class TextRows(Inputs):
    """Texts tokenized batch by batch (see module docstring)."""

    def __init__(self, texts: Sequence[str], tokenizer: Any, *, targets: Any = None,
                 sample_ids: Any = None, target_kinds: Mapping[str, str] | None = None,
                 token_targets: Mapping[str, Any] | None = None,
                 max_length: int | None = None) -> None:
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise InvalidInputError(
                f"text inputs must be strings; row {bad} is a {type(texts[bad]).__name__} "
                f"({texts[bad]!r:.40}). Give a text column, or numeric columns for a model that "
                "takes numbers.")
        if not len(texts):
            raise InvalidInputError("the inputs hold no texts; pass at least one.")
        if tokenizer is None:
            raise InvalidInputError(
                "the inputs are texts but the model has no tokenizer; give one (tokenizer: a "
                "HuggingFace folder, a cached id, a registered model or 'module:factory'), or "
                "pass numeric inputs.")
        super().__init__(n=len(texts), is_text=True, targets=targets, sample_ids=sample_ids,
                         target_kinds=target_kinds)
        self.texts = texts
        self.tokenizer = tokenizer
        limit = getattr(tokenizer, "model_max_length", _MAX_TOKENS) or _MAX_TOKENS
        self.max_length = int(max_length or min(limit, _MAX_TOKENS))
        self.word_lists = {name: _word_matcher(name, spec)
                           for name, spec in (token_targets or {}).items()}
        self.emit_token_targets = False  # set when rows are tokens (see CaptureSession)

    def _encode(self, texts: list[str], padding: bool) -> Any:
        return self.tokenizer(texts, padding="longest" if padding else False, truncation=True,
                              max_length=self.max_length,
                              return_tensors="pt" if padding else None,
                              return_offsets_mapping=(bool(self.word_lists) and padding
                                                      and self.emit_token_targets))

    def batches(self, start: int, stop: int, batch_size: int) -> Iterator[Batch]:
        for lo in range(start, stop, batch_size):
            hi = min(lo + batch_size, stop)
            texts = list(self.texts[lo:hi])
            enc = dict(self._encode(texts, padding=True))
            offsets = enc.pop("offset_mapping", None)
            targets = {}
            if offsets is not None:
                offsets = offsets.numpy()
                for name, match in self.word_lists.items():
                    targets[name] = match(texts, offsets)
            yield Batch(enc, hi - lo, targets, enc.get("attention_mask"))

    def token_counts(self, start: int, stop: int) -> np.ndarray:
        out = np.empty(stop - start, dtype=np.int64)
        for lo in range(start, stop, _COUNT_CHUNK):
            hi = min(lo + _COUNT_CHUNK, stop)
            ids = self._encode(list(self.texts[lo:hi]), padding=False)["input_ids"]
            out[lo - start: hi - start] = [len(x) for x in ids]
        return out


def _word_matcher(name: str, spec: Any) -> Callable[[list[str], np.ndarray], np.ndarray]:
    """A function (texts, offsets (B, T, 2)) -> (B, T) labels of tokens inside listed words."""
    if isinstance(spec, Mapping):
        labelled = [(str(label), list(words)) for label, words in spec.items()]
        categorical = True
    elif isinstance(spec, Sequence) and not isinstance(spec, str):
        labelled, categorical = [("True", list(spec))], False
    else:
        raise InvalidParameterError(
            f"token target {name!r} must be a list of words or a mapping label -> words, got "
            f"{type(spec).__name__}.")
    patterns = []
    for label, words in labelled:
        if not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise InvalidParameterError(
                f"token target {name!r}: the word list of {label!r} must hold non-empty strings.")
        alternatives = "|".join(re.escape(w.strip()) for w in sorted(words, key=len, reverse=True))
        patterns.append((label, re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)))

    def match(texts: list[str], offsets: np.ndarray) -> np.ndarray:
        b, t = offsets.shape[:2]
        out = np.full((b, t), "none", dtype=object) if categorical else np.zeros((b, t), bool)
        for i, text in enumerate(texts):
            starts, stops = offsets[i, :, 0], offsets[i, :, 1]
            real = stops > starts
            for label, rx in reversed(patterns):  # the first list wins on overlaps
                for m in rx.finditer(text):
                    inside = real & (starts < m.end()) & (stops > m.start())
                    out[i, inside] = label if categorical else True
        return out.astype(str) if categorical else out

    return match


def _row_addressable(data: Any) -> Any:
    """Data that can be sliced by rows: a tensor/array, a dict of them, or a map-style Dataset."""
    try:
        import torch
        from torch.utils.data import DataLoader, Dataset, IterableDataset
    except ImportError:  # pragma: no cover - capture needs torch anyway
        torch = None
    if isinstance(data, np.ndarray | Mapping) or (torch is not None and isinstance(data, torch.Tensor)):
        if isinstance(data, np.ndarray) and data.dtype.kind in "OUS":
            raise InvalidInputError(
                f"the inputs are an array of {data.dtype} values; numeric inputs must be numbers "
                "(texts: give a list of strings or a text column).")
        if isinstance(data, Mapping) and not data:
            raise InvalidInputError("the inputs are an empty dict; give one tensor per model input.")
        return data
    if torch is not None and isinstance(data, DataLoader):
        data = data.dataset
    if torch is not None and isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        return _DatasetRows(data)
    raise InvalidInputError(
        f"the inputs are a {type(data).__name__}, which cannot be read by row range; a sharded "
        "capture needs a tensor or array, a dict of tensors, a map-style Dataset or a list of "
        "texts.")


class _DatasetRows:
    """A map-style Dataset sliced into lists of items (collated per batch)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, rows: slice) -> Any:
        from torch.utils.data import Subset

        return Subset(self.dataset, range(*rows.indices(len(self.dataset))))


def _from_object(obj: Any, ref: InputsRef, tokenizer: Any) -> Inputs:
    """Inputs from what a set or factory returned."""
    from distmi.store.capture import CaptureSource

    targets = sample_ids = kinds = None
    token_targets = dict(ref.token_targets)
    if isinstance(obj, TextInputs):
        targets, sample_ids, kinds = obj.targets, obj.sample_ids, obj.target_kinds
        token_targets = {**dict(obj.token_targets or {}), **token_targets}
        obj = obj.texts
    elif isinstance(obj, CaptureSource):
        targets, sample_ids, kinds = obj.targets, obj.sample_ids, obj.target_kinds
        obj = obj.data
    if isinstance(obj, list | tuple) and obj and all(isinstance(t, str) for t in obj):
        return TextRows(list(obj), tokenizer, targets=targets, sample_ids=sample_ids,
                        target_kinds=kinds, token_targets=token_targets,
                        max_length=ref.max_length)
    if token_targets:
        raise InvalidParameterError(
            "token_targets need text inputs (they mark tokens inside listed words); these "
            "inputs are not texts.")
    if isinstance(obj, list | tuple):
        obj = np.asarray(obj)
    return ArrayInputs(obj, targets, sample_ids, kinds)


def _read_table(path: str, columns: list[str] | None = None) -> Any:
    """A pyarrow table from a Parquet, CSV or JSON-lines file (local path or URI)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distmi.core.storage import StorePath

    where = StorePath.of(path)
    if not where.is_file():
        raise InvalidInputError(f"inputs file {path} does not exist.")
    suffix = Path(where.fs_path).suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(where.parquet_source(), columns=columns)
        if suffix == ".csv":
            from pyarrow import csv

            with where.fs.open_input_stream(where.fs_path) as f:
                return csv.read_csv(f)
        from pyarrow import json as pajson

        with where.fs.open_input_stream(where.fs_path) as f:
            return pajson.read_json(f)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInputError(f"cannot read inputs file {path} ({exc}).") from exc


def _file_inputs(ref: InputsRef, tokenizer: Any) -> Inputs:
    import pyarrow as pa

    path = str(ref.target)
    suffix = Path(path.split("?", 1)[0]).suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        if not Path(path).is_file():
            raise InvalidInputError(f"inputs file {path} does not exist.")
        if suffix == ".npy":
            data = np.load(path, mmap_mode="r")
        else:
            import torch

            data = torch.load(path, weights_only=True)
        return _from_object(data, ref, tokenizer)
    if suffix not in TEXT_SUFFIXES:
        raise InvalidInputError(
            f"inputs file {path} has suffix {suffix!r}; pass .parquet, .csv, .jsonl (texts or "
            "numeric columns), .npy or .pt (arrays), a registered set or 'module:factory'.")
    table = _read_table(path)
    names = table.column_names
    missing = [c for c in [ref.text_column, *(ref.columns or ()), *(ref.targets or ())]
               if c is not None and c not in names]
    if missing:
        raise InvalidInputError(f"inputs file {path} has no column(s) {missing}; its columns: "
                                f"{names}.")
    text_column = ref.text_column
    if text_column is None and ref.columns is None and "text" in names:
        text_column = "text"
    if text_column is not None:
        kind = table.schema.field(text_column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise InvalidInputError(
                f"column {text_column!r} of {path} holds {kind} values, not text; name a "
                "column of strings with text_column, or give numeric input columns with columns.")
        inputs = [text_column]
    else:
        numeric = [c for c in names if _is_numeric(table.schema.field(c).type)]
        inputs = list(ref.columns) if ref.columns is not None else [
            c for c in numeric if c not in (ref.targets or ()) and c != "sample_id"]
        bad = [c for c in inputs if not _is_numeric(table.schema.field(c).type)]
        if bad:
            raise InvalidInputError(
                f"input columns {bad} of {path} are not numeric "
                f"({[str(table.schema.field(c).type) for c in bad]}); give numeric columns, or "
                "a text column with text_column for a text model.")
        if not inputs:
            raise InvalidInputError(
                f"inputs file {path} has no text column named 'text' and no numeric columns; "
                "name the text column (text_column) or the numeric input columns (columns).")
    target_cols = list(ref.targets) if ref.targets is not None else [
        c for c in names if c not in inputs and c != "sample_id"]
    targets = {c: table.column(c).to_numpy(zero_copy_only=False) for c in target_cols} or None
    ids = table.column("sample_id").to_numpy(zero_copy_only=False) if "sample_id" in names else None
    if text_column is not None:
        texts = table.column(text_column).to_pylist()
        return TextRows(texts, tokenizer, targets=targets, sample_ids=ids,
                        token_targets=ref.token_targets, max_length=ref.max_length)
    x = np.column_stack([table.column(c).to_numpy(zero_copy_only=False).astype(np.float32)
                         for c in inputs])
    if ref.token_targets:
        raise InvalidParameterError("token_targets need a text column; these inputs are numeric.")
    return ArrayInputs(x, targets, ids)


def _is_numeric(kind: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def open_inputs(ref: InputsRef, tokenizer: Any = None) -> Inputs:
    """Open the inputs ``ref`` names (see module docstring); texts use ``tokenizer``."""
    if ref.kind == "set":
        made = import_target(_SETS[check_input_set(str(ref.target))],
                             f"the factory of input set {ref.target!r}")
        return _from_object(made(**dict(ref.params)), ref, tokenizer)
    if ref.kind == "factory":
        made = import_target(ref.target, "inputs factory")
        return _from_object(made(**dict(ref.params)) if callable(made) else made, ref, tokenizer)
    if ref.kind == "file":
        return _file_inputs(ref, tokenizer)
    raise InvalidParameterError(f"inputs kind must be set, file or factory, got {ref.kind!r}.")


__all__ = ["ArrayInputs", "Inputs", "InputsRef", "TextInputs", "TextRows", "capture_input_sets",
           "open_inputs", "register_input_set"]
