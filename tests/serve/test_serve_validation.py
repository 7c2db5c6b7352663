"""Request validation: every malformed request is a RequestError naming what is wrong, never another
exception; every accepted one satisfies the limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gr2.serve.kserve_import import InferInput, InferRequest
from gr2.serve.validation import Limits, RankRequest, RequestError, v1_requests, v2_request

KNOWN = {f"i{n}" for n in range(30)}
LIMITS = Limits(max_candidates=10, max_history=5, max_instances=3, max_item_id_chars=12, reject_unknown=True)
KEEP = Limits(max_candidates=10, max_history=5, max_instances=3, max_item_id_chars=12, reject_unknown=False)


def known(item: str) -> bool:
    return item in KNOWN


def v1(*instances) -> dict:
    return {"instances": list(instances)}


def instance(history=("i1",), candidates=("i2", "i3"), **extra) -> dict:
    return {"history": list(history), "candidates": list(candidates), **extra}


def tensor(name: str, data: list, datatype: str = "BYTES", shape: list | None = None) -> InferInput:
    return InferInput(name, [len(data)] if shape is None else shape, datatype, data)


def v2(*tensors) -> InferRequest:
    return InferRequest(model_name="gr2", infer_inputs=list(tensors))


def test_valid_v1_instances():
    requests = v1_requests(v1(instance(explain=True), instance(history=())), LIMITS, known)
    assert requests == [
        RankRequest(("i1",), ("i2", "i3"), True),
        RankRequest((), ("i2", "i3"), False),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1], "body: expected a JSON object"),
        ({"instances": [], "x": 1}, "body: unknown field 'x'"),
        ({"instances": []}, "instances: expected a non-empty list"),
        ({"instances": {"a": 1}}, "instances: expected a non-empty list of instances, got dict"),
        (v1(*[instance()] * 4), "instances: 4 instances, at most 3"),
        (v1("x"), "instances[0]: expected an object, got str"),
        (v1({"candidates": ["i1", "i2"]}), "instances[0].history: missing"),
        (v1(instance(colour="red")), "instances[0].'colour': unknown field"),
        (v1(instance(candidates=())), "instances[0].candidates: empty; send 2 to 10"),
        (v1(instance(candidates=("i2",))), "instances[0].candidates: 1 item ids; send 2 to 10"),
        (v1(instance(candidates=[f"i{n}" for n in range(11)])), "candidates: 11 item ids; send 2 to 10"),
        (v1(instance(candidates=("i2", "i3", "i2"))), "candidates: duplicate item ids 'i2'"),
        (v1(instance(history=["i1"] * 6)), "instances[0].history: 6 item ids, at most 5"),
        (v1(instance(candidates=("i2", 3))), "instances[0].candidates[1]: expected an item id string, got int"),
        (v1({"history": [], "candidates": "i2 i3"}), "instances[0].candidates: expected a list of item ids"),
        (v1(instance(candidates=("i2", ""))), "candidates[1]: empty item id"),
        (v1(instance(candidates=("i2", "x" * 13))), "candidates[1]: item id of 13 characters, at most 12"),
        (v1(instance(explain="yes")), "instances[0].explain: expected true or false, got str"),
        (v1(instance(candidates=("i2", "zz"))), "candidates: unknown item ids (not in this model's catalogue): 'zz'"),
        (v1(instance(history=("nope",))), "history: unknown item ids"),
    ],
)
def test_invalid_v1_requests_name_the_problem(body, message):
    with pytest.raises(RequestError) as error:
        v1_requests(body, LIMITS, known)
    assert message in str(error.value)


def test_keep_mode_accepts_unknown_items():
    requests = v1_requests(v1(instance(history=("x",), candidates=("i2", "y"))), KEEP, known)
    assert requests[0].candidates == ("i2", "y")


def test_valid_v2_request():
    request = v2(tensor("history", ["i1"]), tensor("candidates", ["i2", "i3"]), tensor("explain", [True], "BOOL"))
    assert v2_request(request, LIMITS, known) == [RankRequest(("i1",), ("i2", "i3"), True)]


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ([tensor("history", []), tensor("items", ["i2"])], "inputs: unknown input 'items'"),
        ([tensor("history", []), tensor("history", []), tensor("candidates", ["i2", "i3"])], "more than once"),
        ([tensor("history", []), tensor("candidates", [1, 2], "INT64")], "datatype INT64, expected BYTES"),
        ([tensor("history", []), tensor("candidates", ["i2", "i3"], shape=[3])], "shape [3] but 2 values"),
        ([tensor("history", []), tensor("candidates", [["i2", "i3"]], shape=[1, 2])], "nested data"),
        ([tensor("candidates", ["i2", "i3"])], "history: missing"),
        ([tensor("history", []), tensor("candidates", ["i2", "i3"]), tensor("explain", [1], "BOOL")], "explain"),
        (
            [tensor("history", []), tensor("candidates", ["i2", "i3"]), tensor("explain", [True, False], "BOOL")],
            "expected shape [1]",
        ),
    ],
)
def test_invalid_v2_requests_name_the_problem(tensors, message):
    with pytest.raises(RequestError) as error:
        v2_request(v2(*tensors), LIMITS, known)
    assert message in str(error.value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=14),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
ITEM = st.sampled_from(sorted(KNOWN)) | st.text(max_size=14) | JSON
INSTANCE = st.fixed_dictionaries(
    {"history": st.lists(ITEM, max_size=7) | JSON, "candidates": st.lists(ITEM, max_size=12) | JSON},
    optional={"explain": st.booleans() | JSON, "extra": JSON},
)
BODY = st.fixed_dictionaries({"instances": st.lists(INSTANCE | JSON, max_size=4) | JSON}) | JSON


@settings(max_examples=400, deadline=None)
@given(body=BODY, limits=st.sampled_from([LIMITS, KEEP]))
def test_fuzzed_v1_bodies_are_accepted_within_limits_or_refused_with_a_request_error(body, limits):
    try:
        requests = v1_requests(body, limits, known)
    except RequestError as error:
        assert str(error)
        return
    assert 1 <= len(requests) <= limits.max_instances
    for request in requests:
        assert 2 <= len(request.candidates) <= limits.max_candidates
        assert len(set(request.candidates)) == len(request.candidates)
        assert len(request.history) <= limits.max_history
        assert all(
            isinstance(item, str) and 0 < len(item) <= limits.max_item_id_chars
            for item in request.history + request.candidates
        )
        assert isinstance(request.explain, bool)
        if limits.reject_unknown:
            assert set(request.history + request.candidates) <= KNOWN


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(st.sampled_from(["history", "candidates", "explain", "other"]), max_size=4),
    datatypes=st.lists(st.sampled_from(["BYTES", "BOOL", "INT64", "FP32"]), min_size=4, max_size=4),
    data=st.lists(st.lists(ITEM, max_size=11), min_size=4, max_size=4),
    shape_shift=st.integers(-1, 1),
)
def test_fuzzed_v2_requests_are_accepted_or_refused_with_a_request_error(names, datatypes, data, shape_shift):
    tensors = [
        tensor(name, values, datatype, [max(len(values) + shape_shift, 0)])
        for name, datatype, values in zip(names, datatypes, data, strict=False)
    ]
    try:
        requests = v2_request(v2(*tensors), LIMITS, known)
    except RequestError as error:
        assert str(error)
        return
    assert len(requests) == 1 and set(requests[0].candidates) <= KNOWN
