"""The tagger's CRF: its likelihood against brute force over every tag sequence, padding, learning, decoding."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from chatwright.nlu.bio import TagDecoder, bio_tags
from chatwright.nlu.crf import TagTransitions

TAGS = bio_tags(["artist", "playlist"])  # O, B-artist, I-artist, B-playlist, I-playlist


def _valid(sequence: tuple[int, ...]) -> bool:
    previous = "O"
    for index in sequence:
        tag = TAGS[index]
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def _score(crf: TagTransitions, emissions: torch.Tensor, sequence: tuple[int, ...]) -> torch.Tensor:
    total = crf.start[sequence[0]] + crf.end[sequence[-1]] + emissions[0, sequence[0]]
    for word in range(1, len(sequence)):
        total = total + crf.transitions[sequence[word - 1], sequence[word]] + emissions[word, sequence[word]]
    return total


def _random_crf(seed: int) -> TagTransitions:
    crf = TagTransitions(TAGS)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return crf


def test_likelihood_is_the_gold_score_against_all_valid_sequences_by_brute_force() -> None:
    crf = _random_crf(0)
    emissions = torch.randn(1, 4, len(TAGS), generator=torch.Generator().manual_seed(1))
    gold = (1, 2, 0, 3)
    valid = [seq for seq in itertools.product(range(len(TAGS)), repeat=4) if _valid(seq)]
    partition = torch.logsumexp(torch.stack([_score(crf, emissions[0], seq) for seq in valid]), dim=0)
    expected = partition - _score(crf, emissions[0], gold)
    found = crf.negative_log_likelihood(emissions, torch.tensor([gold]))
    assert torch.allclose(found, expected, atol=1e-4)
    assert len(valid) < len(TAGS) ** 4  # the forbidden moves really were left out


def test_a_short_message_padded_in_a_batch_keeps_its_own_likelihood() -> None:
    crf = _random_crf(2)
    generator = torch.Generator().manual_seed(3)
    short = torch.randn(1, 2, len(TAGS), generator=generator)
    alone = crf.negative_log_likelihood(short, torch.tensor([[3, 4]]))
    long = torch.randn(1, 5, len(TAGS), generator=generator)
    long_tags = torch.tensor([[0, 1, 2, 2, 0]])
    long_alone = crf.negative_log_likelihood(long, long_tags)
    padded = torch.cat([torch.cat([short, torch.randn(1, 3, len(TAGS), generator=generator)], dim=1), long])
    tags = torch.cat([torch.tensor([[3, 4, -100, -100, -100]]), long_tags])
    assert torch.allclose(crf.negative_log_likelihood(padded, tags), alone + long_alone, atol=1e-4)
    nothing = crf.negative_log_likelihood(padded[:1], torch.full((1, 5), -100))
    assert nothing.item() == 0.0  # a message without words adds nothing


def test_trained_moves_decide_a_word_its_own_scores_leave_open() -> None:
    """Two-word playlist names follow 'add': the second word's own scores cannot tell I-playlist from O (they
    are equal), and only the learned move from B-playlist to I-playlist decides it."""
    crf = TagTransitions(TAGS)
    optimizer = torch.optim.Adam(crf.parameters(), lr=0.1)
    emissions = torch.zeros(1, 2, len(TAGS))
    gold = torch.tensor([[TAGS.index("B-playlist"), TAGS.index("I-playlist")]])
    for _ in range(50):
        loss = crf.negative_log_likelihood(emissions, gold)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    scores = np.full((2, len(TAGS)), -5.0, dtype=np.float32)
    scores[0, TAGS.index("B-playlist")] = 0.0
    scores[1, TAGS.index("I-playlist")] = scores[1, TAGS.index("O")] = -0.5
    with_moves = TagDecoder(TAGS, ["add"], None, crf.learned()).decode(scores, 0)
    assert [TAGS[i] for i in with_moves] == ["B-playlist", "I-playlist"]
    assert crf.learned().transitions[TAGS.index("B-playlist"), TAGS.index("I-playlist")] > 0
