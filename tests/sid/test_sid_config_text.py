import pytest
from pydantic import ValidationError

from gr2.data.schema import Item
from gr2.sid.config import SidConfig
from gr2.sid.stage import catalog_texts, duplicate_text_items
from gr2.sid.text import clean_text, item_text


def test_defaults_are_the_papers_best_setting():
    config = SidConfig()
    assert (config.kmeans_init, config.ema, config.random_last_level) == (True, True, True)
    assert not (config.diversity_loss or config.dead_code_reset or config.contrastive)
    assert (config.levels, config.codebook_size, config.learned_levels) == (4, 256, 3)


def test_unknown_fields_and_bad_values_are_rejected():
    with pytest.raises(ValidationError, match="extra"):
        SidConfig(codebok_size=16)
    with pytest.raises(ValidationError):
        SidConfig(ema_decay=1.0)
    with pytest.raises(ValidationError):
        SidConfig(text_fields=("title", "price"))


def test_every_field_is_documented():
    assert all(field.description for field in SidConfig.model_fields.values())


def test_item_text_labels_present_fields_in_order_and_unescapes_html():
    item = Item("x", title="Bath &amp;  Body", brand=None, categories=("Beauty", "Bath"), description=" ")
    assert item_text(item, ("title", "brand", "categories", "description")) == (
        "Title: Bath & Body; Categories: Beauty > Bath"
    )
    assert item_text(item, ("brand",)) == ""
    assert clean_text("a\n\t&lt;b&gt;") == "a <b>"


def test_empty_text_falls_back_to_item_id_and_is_counted():
    catalog = {"b": Item("b", title="Shoe"), "a": Item("a", title="  ")}
    ids, texts, empty = catalog_texts(catalog, SidConfig(text_fields=("title",)))
    assert ids == ["a", "b"] and texts == ["a", "Title: Shoe"] and empty == 1


def test_empty_text_can_be_an_error_naming_the_item():
    catalog = {"a": Item("a", title="")}
    with pytest.raises(ValueError, match=r"\['a'\]"):
        catalog_texts(catalog, SidConfig(text_fields=("title",), on_empty_text="error"))


def test_catalog_key_must_be_the_item_id():
    with pytest.raises(ValueError, match="'k' holds item 'a'"):
        catalog_texts({"k": Item("a", title="x")}, SidConfig())


def test_duplicate_texts_are_counted():
    assert duplicate_text_items(["x", "y", "x", "x", "z"]) == 3
