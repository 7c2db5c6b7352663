from gr2.sid.sidmap import SidMap
from gr2.sid.trie import PrefixTrie


def test_trie_allows_exactly_the_catalogue_continuations(tmp_path):
    sid_map = SidMap(levels=3, codebook_size=4, codes={"a": (0, 1, 2), "b": (0, 1, 3), "c": (2, 0, 0)})
    trie = PrefixTrie.from_sid_map(sid_map)
    assert trie.allowed_next([]) == [0, 2]
    assert trie.allowed_next([0]) == [1]
    assert trie.allowed_next([0, 1]) == [2, 3]
    assert trie.allowed_next([0, 1, 3]) == []
    assert trie.allowed_next([1]) == []
    trie.save(tmp_path / "trie.json")
    loaded = PrefixTrie.load(tmp_path / "trie.json")
    assert loaded == trie
    assert loaded.root[0][1][3] == "b"
