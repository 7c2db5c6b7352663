import pytest

from gr2.config import ConfigError, available_presets, config_from_json, load_preset


def test_every_preset_validates():
    assert {"smoke", "demo", "beauty-cpu", "beauty-gpu"} <= set(available_presets())
    for name in available_presets():
        assert load_preset(name).name == name


def test_unknown_key_is_rejected_with_its_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nprerank:\n  sasrec:\n    epoch: 3\n")
    with pytest.raises(ConfigError, match=r"prerank.sasrec.epoch: Extra inputs are not permitted"):
        load_preset(str(path))


def test_invalid_value_names_the_key():
    with pytest.raises(ConfigError, match=r"prerank.method: Input should be"):
        load_preset("smoke", ["prerank.method=magic"])


def test_overrides_apply_and_parse_yaml_values():
    config = load_preset("smoke", ["prerank.sasrec.epochs=7", "data.max_users=null"])
    assert config.prerank.sasrec.epochs == 7
    assert config.data.max_users is None


def test_bad_override_and_unknown_preset():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_preset("smoke", ["prerank.k"])
    with pytest.raises(ConfigError, match="available: "):
        load_preset("no-such-preset")


def test_json_round_trip_and_hash():
    config = load_preset("demo")
    assert config_from_json(config.model_dump_json()) == config
    assert config.config_hash() != load_preset("smoke").config_hash()
