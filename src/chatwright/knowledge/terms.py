"""Index terms for lexical matching: lowercase word tokens without stopwords, lightly stemmed so that
"fees"/"fee" and "charged"/"charge" match."""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"\w+")

# Function words only: domain words such as "interest", "bill" or "call" (in some common lists) must stay.
_STOPWORD_LIST = """
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself
of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours yourself yourselves s t d ll
m re ve
"""
_STOPWORDS = frozenset(_STOPWORD_LIST.split())


def terms(text: str) -> list[str]:
    """Index terms of `text`, in order, repeats kept (BM25 counts them)."""
    return [_stem(word) for word in _WORD.findall(text.lower()) if word not in _STOPWORDS]


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    """A light, conservative suffix stripper: plural and tense endings, then a final "e" and doubled
    consonant, so variants of a word share one stem even when the stem is not a word itself."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    elif word.endswith("ed") and len(word) > 4:
        word = word[:-2]
    elif word.endswith("ing") and len(word) > 5:
        word = word[:-3]
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        word = word[:-1]
    return word
