import pytest

from gr2.data.schema import Item
from gr2.prerank.candidates import RerankExample
from gr2.sid.sidmap import SidMap

ITEMS = [f"i{n}" for n in range(14)]


@pytest.fixture
def catalog():
    return {
        i: Item(i, title=f"Product {i} &", brand="B", categories=("Office", "Paper" if n % 2 else "Pens"))
        for n, i in enumerate(ITEMS)
    }


@pytest.fixture
def sids():
    return SidMap(levels=4, codebook_size=16, codes={i: (n % 3, n % 5, n, 0) for n, i in enumerate(ITEMS)})


@pytest.fixture
def example():
    return RerankExample("train", "u1", ("i0", "i1", "i2"), tuple(ITEMS[3:13]), target="i7")
