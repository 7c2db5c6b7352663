import pytest
from pydantic import BaseModel, ValidationError

from gr2.lm.config import BaseModelConfig, MidtrainConfig, TaskMixture


@pytest.mark.parametrize("model", [BaseModelConfig, MidtrainConfig, TaskMixture])
def test_every_field_is_documented(model: type[BaseModel]):
    undocumented = [name for name, field in model.model_fields.items() if not field.description]
    assert undocumented == []


@pytest.mark.parametrize("model", [BaseModelConfig, MidtrainConfig, TaskMixture])
def test_unknown_fields_are_rejected(model: type[BaseModel]):
    with pytest.raises(ValidationError, match="extra"):
        model(no_such_option=1)


def test_beam_narrower_than_k_is_rejected():
    with pytest.raises(ValidationError, match="beam_width=5 must be >= eval_k=10"):
        MidtrainConfig(beam_width=5, eval_k=10)


def test_mixture_without_any_weight_is_rejected():
    with pytest.raises(ValidationError, match="at least one task weight"):
        TaskMixture(sequential=0, captioning=0, inverse_captioning=0, grounding=0, general_text=0)


def test_deepspeed_accepts_a_path_or_a_dict():
    assert MidtrainConfig(deepspeed="configs/deepspeed/zero2.json").deepspeed.endswith("zero2.json")
    assert MidtrainConfig(deepspeed={"zero_optimization": {"stage": 2}}).deepspeed["zero_optimization"]
