from gr2.lm.config import MidtrainConfig
from gr2.prerank.cooccurrence import PopularityRetriever
from gr2.prerank.sid_beam import SidBeamRetriever


def test_sid_beam_candidates_are_distinct_catalogue_items_outside_the_history(tmp_path, tiny_dir, office):
    catalog, sids, split, examples = office
    sids.save(tmp_path / "sid_map.json")
    popular = PopularityRetriever(split.train_sequences(), sorted(catalog))
    defaults = MidtrainConfig()
    retriever = SidBeamRetriever(tiny_dir, tmp_path / "sid_map.json", popular, defaults.system_prompt, 5)
    lists = retriever.top_k(examples[:3], k=10)
    for candidates, example in zip(lists, examples[:3], strict=True):
        assert len(candidates) == len(set(candidates)) == 10
        assert set(candidates) <= set(catalog)
        assert not set(candidates) & set(example.history)
