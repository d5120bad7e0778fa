"""Intent and slots decided together, against brute force over every intent and every allowed tag sequence."""

from __future__ import annotations

import itertools

import numpy as np

from chatwright.nlu.bio import TagDecoder, bio_tags, tagged_runs, transition_mask

SLOTS = {"PlayMusic": ["album", "track"], "AddToPlaylist": ["playlist", "track"], "GetWeather": []}
LABELS = list(SLOTS)
TAGS = bio_tags(["album", "playlist", "track"])


def _brute_force(log_probs: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, int, tuple[int, ...]]:
    """Exact joint probabilities (every intent's best allowed sequence), the winner and its sequence."""
    start, transitions = transition_mask(TAGS)
    best_scores, best_paths = [], []
    for label in LABELS:
        allowed = [i for i, tag in enumerate(TAGS) if tag == "O" or tag[2:] in SLOTS[label]]
        best = max(itertools.product(allowed, repeat=len(log_probs)), key=lambda path: (
            log_probs[0, path[0]] + start[path[0]]
            + sum(transitions[path[w - 1], path[w]] + log_probs[w, path[w]] for w in range(1, len(path)))))
        best_scores.append(log_probs[np.arange(len(best)), best].sum() + start[best[0]]
                           + sum(transitions[best[w - 1], best[w]] for w in range(1, len(best))))
        best_paths.append(best)
    weights = np.log(probabilities) + np.array(best_scores)
    exact = np.exp(weights - weights.max())
    winner = int(exact.argmax())
    return exact / exact.sum(), winner, best_paths[winner]


def test_joint_decision_matches_brute_force_and_never_overstates_the_winner() -> None:
    decoder = TagDecoder(TAGS, LABELS, SLOTS)
    rng = np.random.default_rng(7)
    changed = 0
    for _ in range(60):
        words = int(rng.integers(1, 5))
        log_probs = np.log(rng.dirichlet(np.full(len(TAGS), 0.3), size=words)).astype(np.float32)
        probabilities = rng.dirichlet(np.ones(len(LABELS))).astype(np.float32)
        exact, winner, path = _brute_force(log_probs, probabilities)
        joint, tags = decoder.decode_jointly(log_probs, probabilities)
        assert int(joint.argmax()) == winner and tuple(tags) == path
        assert abs(float(joint.sum()) - 1.0) < 1e-5
        assert joint[winner] <= exact[winner] + 1e-5  # intents left undecoded keep an upper bound
        changed += winner != int(probabilities.argmax())
    assert changed  # the slots overturned some intent decisions


def test_tags_that_fit_the_likeliest_intent_leave_its_probabilities_alone() -> None:
    decoder = TagDecoder(TAGS, LABELS, SLOTS)
    log_probs = np.log(np.full((3, len(TAGS)), 0.02, dtype=np.float32))
    log_probs[1, TAGS.index("B-album")] = np.log(0.86)
    probabilities = np.array([0.5, 0.3, 0.2], dtype=np.float32)
    joint, tags = decoder.decode_jointly(log_probs, probabilities)
    np.testing.assert_allclose(joint, probabilities, rtol=1e-6)
    assert [TAGS[i] for i in tags] == ["O", "B-album", "O"]


def test_a_slot_the_tagger_is_sure_of_overturns_a_close_intent() -> None:
    decoder = TagDecoder(TAGS, LABELS, SLOTS)
    log_probs = np.log(np.full((3, len(TAGS)), 0.01, dtype=np.float32))
    log_probs[:, 0] = np.log(0.6)
    log_probs[2, TAGS.index("B-playlist")] = np.log(0.95)  # "add this to playlist"
    probabilities = np.array([0.55, 0.40, 0.05], dtype=np.float32)
    joint, tags = decoder.decode_jointly(log_probs, probabilities)
    assert int(joint.argmax()) == LABELS.index("AddToPlaylist")
    assert TAGS[tags[2]] == "B-playlist"
    # without the slot evidence, the head's decision stands
    assert decoder.decode(log_probs, 0)[2] == 0


def test_bio_runs_join_an_entity_s_words_and_start_anew_where_a_tag_does_not_continue_one() -> None:
    tags = ["O", "B-album", "I-album", "I-artist", "O", "I-album", "B-album", "B-album"]
    assert tagged_runs(tags) == [(1, 3, "album"), (3, 4, "artist"), (5, 6, "album"), (6, 7, "album"),
                                 (7, 8, "album")]
    assert tagged_runs(["O", "O"]) == [] and tagged_runs([]) == []
