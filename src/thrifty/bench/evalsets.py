"""A built-in eval set for text-embedding models (used when the user gives none).

120 short sentences in 12 topics, written for this project, so nearest-neighbour agreement has
real neighbours to keep or lose: several sentences per topic are near paraphrases.
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
