import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gr2.sid.assign import draw_random_last_codes, resolve_collisions
from gr2.sid.metrics import colliding_items, perplexity, uniqueness, utilisation


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=60), st.integers(0, 1000))
def test_random_last_level_never_duplicates_where_a_free_code_exists(groups, seed):
    codebook_size = 8
    prefixes = np.array([[group, 0] for group in groups])
    last, _ = draw_random_last_codes(prefixes, codebook_size, np.random.default_rng(seed))
    codes = np.column_stack([prefixes, last])
    sizes = np.bincount(groups)
    # A collision can only come from a prefix with more items than codes, one per extra item.
    assert len(codes) - len(np.unique(codes, axis=0)) == sum(max(0, s - codebook_size) for s in sizes)


def test_random_last_level_is_seeded():
    prefixes = np.zeros((20, 2), dtype=np.int64)
    first = draw_random_last_codes(prefixes, 32, np.random.default_rng(3))[0]
    assert np.array_equal(first, draw_random_last_codes(prefixes, 32, np.random.default_rng(3))[0])
    assert not np.array_equal(first, draw_random_last_codes(prefixes, 32, np.random.default_rng(4))[0])


def line_codebooks(levels, size):
    """Codes on a line, so 'nearest' is easy to reason about: code c at level l is c * 10^-l."""
    return [np.arange(size, dtype=np.float32)[:, None] * 10.0**-level for level in range(levels)]


def test_learned_last_level_collision_moves_to_the_nearest_free_code():
    codebooks = line_codebooks(3, 4)
    codes = np.array([[1, 1, 2], [1, 1, 2], [1, 1, 3]])
    latents = np.array([[1.12], [1.125], [1.13]], dtype=np.float32)
    result = resolve_collisions(
        codes, np.array([0.0, 1.0, 2.0]), latents, codebooks, 4, np.random.default_rng(0), "abc"
    )
    assert result.codes.tolist() == [[1, 1, 2], [1, 1, 1], [1, 1, 3]]
    assert result.changed_level.tolist() == [-1, 2, -1]


def test_full_prefix_moves_the_level_above_to_its_next_nearest_code():
    codebooks = line_codebooks(2, 2)  # random last level: prefixes of 2 codes, 2 last codes each
    codes = np.array([[0, 1, 0], [0, 1, 1], [0, 1, 0]])
    latents = np.zeros((3, 1), dtype=np.float32)
    result = resolve_collisions(codes, np.arange(3), latents, codebooks, 2, np.random.default_rng(0), "abc")
    assert uniqueness(result.codes) == 1.0
    assert result.codes[:2].tolist() == codes[:2].tolist()
    assert result.codes[2, :2].tolist() == [0, 0] and result.changed_level[2] == 1


def test_resolution_always_ends_unique_and_keeps_the_priority_winner():
    rng = np.random.default_rng(0)
    codebooks = [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3)]
    codes = rng.integers(0, 2, size=(40, 4))
    priority = rng.random(40)
    result = resolve_collisions(
        codes,
        priority,
        rng.normal(size=(40, 3)).astype(np.float32),
        codebooks,
        4,
        rng,
        [str(i) for i in range(40)],
    )
    assert uniqueness(result.codes) == 1.0
    assert (result.changed_level >= 0).sum() == 40 - len(np.unique(codes, axis=0))
    best = np.argmin(np.where((codes == codes[0]).all(1), priority, np.inf))
    assert result.changed_level[best] == -1


def test_uniqueness_and_level_metrics():
    codes = np.array([[0, 1], [0, 1], [0, 2], [1, 3]])
    assert uniqueness(codes) == 0.5 and colliding_items(codes) == 2
    assert utilisation(codes[:, 0], 4) == 0.5
    assert np.isclose(perplexity(np.array([0, 1, 2, 3]), 4), 4.0)
    assert np.isclose(perplexity(np.array([0, 0, 0, 0]), 4), 1.0)
