"""Inputs to judge and time a model on: a built-in text eval set, and valid synthetic feeds.

The text set (used when the user gives none) is 120 short sentences in 12 topics, written for this
project, so nearest-neighbour agreement has real neighbours to keep or lose: several sentences per
topic are near paraphrases.

``synthetic_feeds`` makes inputs a model accepts from its input signature alone: float tensors
from a normal distribution, booleans, and integers that are valid *as what they are* — token ids
below the vocabulary size read from the embedding, attention masks of ones and zeros (padding at
the end), zeros for token types, small indices otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SENTENCES: tuple[str, ...] = (
    # cooking
    "Preheat the oven to two hundred degrees before you put the bread in.",
    "Bake the loaf in a hot oven for about forty minutes.",
    "Chop the onions finely and fry them in butter until golden.",
    "Slice the onion thin and cook it slowly in a little oil.",
    "This soup tastes better the next day after the flavours settle.",
    "Add a pinch of salt to the pasta water before it boils.",
    "My grandmother's apple pie recipe uses cinnamon and lemon zest.",
    "The sauce thickens if you let it simmer without a lid.",
    "Whisk the eggs and sugar until the mixture turns pale.",
    "Fresh basil should be added at the very end of cooking.",
    # weather
    "Heavy rain is expected across the north of the country tonight.",
    "Forecasters warn of storms and flooding in northern regions this evening.",
    "It will be sunny and warm for the rest of the week.",
    "Temperatures will drop below freezing after midnight.",
    "A cold front brings snow to the mountains on Thursday.",
    "The humidity made the afternoon feel much hotter than it was.",
    "Strong winds knocked down trees along the coast.",
    "Fog delayed several morning flights at the airport.",
    "The drought has left the reservoirs at record lows.",
    "Light showers will clear by lunchtime, followed by sunshine.",
    # programming
    "The function returns null when the list is empty.",
    "If the array has no elements, the method gives back nothing.",
    "Refactor this class so that each method does one thing.",
    "The build fails because a dependency version is pinned too tightly.",
    "Add a unit test that reproduces the bug before fixing it.",
    "The database query is slow because the column has no index.",
    "Use a context manager so the file is always closed.",
    "The compiler reports a type mismatch on line forty two.",
    "Caching the results cut the response time in half.",
    "A race condition appears when two threads write the same counter.",
    # finance
    "The central bank raised interest rates by a quarter point.",
    "Borrowing costs went up after the bank increased its key rate.",
    "Shares of the company fell sharply after the earnings report.",
    "Inflation slowed for the third month in a row.",
    "She moved her savings into a low-cost index fund.",
    "The startup raised fifty million dollars in its latest round.",
    "Mortgage payments have become harder to afford for young buyers.",
    "The currency weakened against the dollar this morning.",
    "Quarterly revenue beat analysts' expectations.",
    "The pension fund is diversifying into infrastructure.",
    # sport
    "The striker scored twice in the second half to win the match.",
    "Two late goals from the forward secured the victory.",
    "The marathon runner set a new course record.",
    "Rain stopped play during the final day of the cricket test.",
    "The tennis champion lost in straight sets in the first round.",
    "Our team trains three evenings a week at the local pool.",
    "The coach was fired after a string of heavy defeats.",
    "She won gold in the hundred metres at the national championships.",
    "The cyclists climbed the mountain pass in thick fog.",
    "Tickets for the final sold out within minutes.",
    # health
    "Regular exercise lowers the risk of heart disease.",
    "Staying active reduces your chances of cardiovascular problems.",
    "Drink plenty of water when you have a fever.",
    "The clinic offers free flu vaccinations every autumn.",
    "Lack of sleep affects memory and concentration.",
    "The doctor prescribed antibiotics for the infection.",
    "A balanced diet includes plenty of vegetables and whole grains.",
    "Wash your hands often to stop germs from spreading.",
    "Physiotherapy helped him recover after the knee surgery.",
    "Stress can cause headaches and trouble sleeping.",
    # travel
    "The train to the capital leaves every hour from platform four.",
    "Trains for the city depart hourly from the fourth platform.",
    "We booked a small hotel near the old harbour.",
    "Remember to check whether you need a visa before travelling.",
    "The flight was cancelled because of a strike by air traffic controllers.",
    "Renting a car is the easiest way to explore the island.",
    "The museum is closed on Mondays and public holidays.",
    "Pack light, because the budget airline charges for bags.",
    "The ferry crossing takes about ninety minutes in calm weather.",
    "Hostels are a cheap option for backpackers in Europe.",
    # science
    "Water boils at a lower temperature at high altitude.",
    "At the top of a mountain, water starts boiling below one hundred degrees.",
    "The telescope captured images of a distant galaxy.",
    "Plants convert sunlight into chemical energy through photosynthesis.",
    "The experiment was repeated to confirm the surprising result.",
    "Electrons carry a negative electric charge.",
    "The vaccine trial included more than thirty thousand volunteers.",
    "Glaciers are retreating faster than scientists expected.",
    "DNA carries the genetic instructions of living organisms.",
    "The probe will reach the outer planets in about ten years.",
    # home
    "The kitchen tap has been dripping all week.",
    "Our kitchen faucet keeps leaking and needs a new washer.",
    "We painted the living room a pale shade of green.",
    "The heating boiler needs servicing before winter.",
    "Please take the bins out on Tuesday night.",
    "The new sofa arrives on Saturday morning.",
    "Mould is growing in the corner of the bathroom ceiling.",
    "We replaced the old windows to keep the house warmer.",
    "The garden fence blew down in the storm.",
    "Vacuum the stairs and dust the shelves before the guests arrive.",
    # music and film
    "The band played their new album from start to finish.",
    "The group performed every song of their latest record live.",
    "The film won the award for best screenplay.",
    "She has been learning the violin since she was six.",
    "The concert was postponed because the singer lost her voice.",
    "The soundtrack of that movie is still stuck in my head.",
    "The orchestra rehearsed the symphony for three weeks.",
    "The documentary follows a family of farmers for a year.",
    "Tickets for the festival go on sale on Friday.",
    "The director is known for long, silent opening scenes.",
    # work
    "The meeting has been moved to Thursday afternoon.",
    "We rescheduled the meeting for Thursday after lunch.",
    "Please send me the report by the end of the day.",
    "She was promoted to lead the design team.",
    "The office will be closed for the holiday next Monday.",
    "Our team is hiring two backend engineers.",
    "He works from home on Wednesdays and Fridays.",
    "The project deadline was pushed back by two weeks.",
    "The new manager introduced weekly one-to-one meetings.",
    "Expenses must be submitted within thirty days.",
    # animals
    "The cat sleeps on the windowsill all afternoon.",
    "Our cat spends the whole afternoon napping by the window.",
    "Wolves were reintroduced to the national park last year.",
    "The dog barks whenever the postman comes to the door.",
    "Bees are essential for pollinating many crops.",
    "The zoo welcomed a baby elephant this spring.",
    "Owls hunt at night using their excellent hearing.",
    "The parrot can imitate the sound of the doorbell.",
    "Salmon swim upstream to lay their eggs.",
    "The horse refused to jump the last fence.",
)

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def encode_texts(
    tokenizer_dir: Path, texts: Sequence[str], *, pad_to: int | None = None
) -> dict[str, np.ndarray]:
    """Token arrays for ``texts`` (int64), padded to the longest or to ``pad_to`` tokens."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))  # type: ignore[no-untyped-call]
    padding: Any = "max_length" if pad_to else True
    enc = tokenizer(
        list(texts), padding=padding, truncation=True, max_length=pad_to or 256, return_tensors="np"
    )
    return {name: enc[name].astype(np.int64) for name in TEXT_INPUTS if name in enc}


def batches(feeds: dict[str, np.ndarray], batch_size: int) -> list[dict[str, np.ndarray]]:
    """Split feeds along the first axis into batches of ``batch_size``."""
    total = len(next(iter(feeds.values())))
    return [{k: v[i : i + batch_size] for k, v in feeds.items()} for i in range(0, total, batch_size)]


#: onnxruntime's type strings → numpy dtypes for the inputs thrifty can make
ORT_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(bfloat16)": np.float32,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}
#: numpy dtype names (as ingest records them) → onnxruntime type strings
NUMPY_TO_ORT = {np.dtype(v).name: k for k, v in reversed(list(ORT_DTYPES.items()))}
DEFAULT_DYNAMIC_DIM = 16
InputSpec = tuple[str, str, list[Any]]


def input_kind(name: str) -> str:
    """ids | mask | type | position | other, from an integer input's name."""
    lowered = name.lower()
    if "mask" in lowered:
        return "mask"
    if "type" in lowered or "segment" in lowered:
        return "type"
    if "position" in lowered:
        return "position"
    if "ids" in lowered or "token" in lowered or "input" in lowered:
        return "ids"
    return "other"


def input_shape(
    shape: Sequence[Any], batch_size: int, seq_len: int | None, sizes: dict[str, int], *, tokens: bool
) -> list[int]:
    """Concrete dims: fixed dims kept, dynamic ones from the batch size / sequence length.

    A symbolic dim keeps one size across inputs (``sizes`` remembers it), so inputs that share a
    dim name still agree.
    """
    dims: list[int] = []
    for axis, dim in enumerate(shape):
        if isinstance(dim, int) and dim > 0:
            dims.append(dim)
            continue
        if isinstance(dim, str) and dim and dim != "?" and dim in sizes:
            dims.append(sizes[dim])
            continue
        size = (
            batch_size if axis == 0 else (seq_len or DEFAULT_DYNAMIC_DIM) if tokens else DEFAULT_DYNAMIC_DIM
        )
        if isinstance(dim, str) and dim and dim != "?":
            sizes[dim] = size
        dims.append(size)
    return dims


def _integers(
    name: str, dtype: Any, dims: list[int], vocab_size: int | None, rng: np.random.Generator, pad: bool
) -> np.ndarray:
    kind = input_kind(name)
    if kind == "mask":
        return (_mask(dims, rng) if pad else np.ones(dims, np.int64)).astype(dtype)
    if kind == "type":
        return np.zeros(dims, dtype)
    if kind == "position" and dims:
        return np.broadcast_to(np.arange(dims[-1]), dims).astype(dtype)
    high = vocab_size if vocab_size else 2
    low = 1000 if high > 2000 else 0  # BERT-like vocabularies keep [unused] / special ids below 1000
    info = np.iinfo(dtype)
    return rng.integers(max(low, info.min), min(high, int(info.max) + 1), dims).astype(dtype)


def _mask(dims: list[int], rng: np.random.Generator) -> np.ndarray:
    """Ones, with padding (zeros) at the end of some rows of a [batch, sequence] mask."""
    mask = np.ones(dims, np.int64)
    if len(dims) == 2 and dims[1] > 4:
        lengths = rng.integers(max(1, dims[1] // 4), dims[1] + 1, dims[0])
        mask[np.arange(dims[1])[None, :] >= lengths[:, None]] = 0
    return mask


def synthetic_feeds(
    specs: Sequence[InputSpec],
    batch_size: int,
    seq_len: int | None = None,
    vocab_sizes: dict[str, int] | None = None,
    *,
    seed: int = 0,
    pad: bool = True,
) -> dict[str, np.ndarray]:
    """Valid inputs for a model with these ``(name, onnxruntime type, shape)`` inputs.

    ``pad=False`` keeps attention masks all ones (timing at a stated sequence length).
    """
    rng = np.random.default_rng(seed)
    vocab = vocab_sizes or {}
    sizes: dict[str, int] = {}
    feeds: dict[str, np.ndarray] = {}
    for name, ort_type, shape in specs:
        dtype = ORT_DTYPES.get(ort_type)
        if dtype is None:
            raise ValueError(f"input {name!r} has type {ort_type}, which thrifty cannot generate")
        is_int = np.issubdtype(dtype, np.integer)
        dims = input_shape(shape, batch_size, seq_len, sizes, tokens=is_int)
        if dtype is np.bool_:
            feeds[name] = rng.random(dims) < 0.5
        elif is_int:
            feeds[name] = _integers(name, dtype, dims, vocab.get(name), rng, pad)
        else:
            feeds[name] = rng.standard_normal(dims).astype(dtype)
    _zero_padded_ids(feeds, specs)
    return feeds


def _zero_padded_ids(feeds: dict[str, np.ndarray], specs: Sequence[InputSpec]) -> None:
    """Token ids under a zero of the attention mask become 0 (the pad id), as a tokenizer does."""
    masks = [feeds[n] for n, _, _ in specs if input_kind(n) == "mask"]
    for name, _, _ in specs:
        value = feeds[name]
        integer = np.issubdtype(value.dtype, np.integer)
        if integer and input_kind(name) == "ids" and masks and masks[0].shape == value.shape:
            value[masks[0] == 0] = 0
