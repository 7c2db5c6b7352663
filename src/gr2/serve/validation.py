"""Request validation: KServe v1 and v2 bodies -> `RankRequest`s, or a `RequestError` (HTTP 400) whose
message names the field and the value that is wrong.

v1: `{"instances": [{"history": [ids], "candidates": [ids], "explain": false}, ...]}`.
v2: one instance per request, as tensors: `history` and `candidates` (BYTES, 1-D, one item id per element)
and an optional `explain` (BOOL, shape [1]).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gr2.serve.config import MIN_CANDIDATES

INSTANCE_FIELDS = ("history", "candidates", "explain")
V2_DATATYPES = {"history": "BYTES", "candidates": "BYTES", "explain": "BOOL"}
SHOWN_VALUES = 5


class RequestError(ValueError):
    """The client sent something the server cannot rank; the message says what and where."""


@dataclass(frozen=True)
class RankRequest:
    history: tuple[str, ...]
    candidates: tuple[str, ...]
    explain: bool = False


@dataclass(frozen=True)
class Limits:
    max_candidates: int
    max_history: int
    max_instances: int
    max_item_id_chars: int
    reject_unknown: bool


def type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def shown(values: list) -> str:
    more = f" and {len(values) - SHOWN_VALUES} more" if len(values) > SHOWN_VALUES else ""
    return ", ".join(repr(v)[:60] for v in values[:SHOWN_VALUES]) + more


def item_ids(field: str, value: object, limits: Limits) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise RequestError(f"{field}: expected a list of item ids (strings), got {type_name(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise RequestError(f"{field}[{index}]: expected an item id string, got {type_name(item)} {item!r:.60}")
        if not item:
            raise RequestError(f"{field}[{index}]: empty item id")
        if len(item) > limits.max_item_id_chars:
            raise RequestError(
                f"{field}[{index}]: item id of {len(item)} characters, at most {limits.max_item_id_chars}"
            )
    return tuple(value)


def check_counts(where: str, history: tuple[str, ...], candidates: tuple[str, ...], limits: Limits) -> None:
    if not candidates:
        raise RequestError(f"{where}candidates: empty; send {MIN_CANDIDATES} to {limits.max_candidates} item ids")
    if not MIN_CANDIDATES <= len(candidates) <= limits.max_candidates:
        raise RequestError(
            f"{where}candidates: {len(candidates)} item ids; send {MIN_CANDIDATES} to {limits.max_candidates}"
        )
    duplicates = sorted({item for item in candidates if candidates.count(item) > 1})
    if duplicates:
        raise RequestError(f"{where}candidates: duplicate item ids {shown(duplicates)}")
    if len(history) > limits.max_history:
        raise RequestError(f"{where}history: {len(history)} item ids, at most {limits.max_history}")


def check_known(where: str, field: str, ids: tuple[str, ...], rankable: Callable[[str], bool]) -> None:
    unknown = sorted({item for item in ids if not rankable(item)})
    if unknown:
        raise RequestError(f"{where}{field}: unknown item ids (not in this model's catalogue): {shown(unknown)}")


def instance_request(raw: object, where: str, limits: Limits, rankable: Callable[[str], bool]) -> RankRequest:
    """One instance (a JSON object) -> RankRequest; `where` prefixes messages, e.g. 'instances[2].'."""
    if not isinstance(raw, dict):
        raise RequestError(f"{where.rstrip('.') or 'instance'}: expected an object, got {type_name(raw)}")
    extra = sorted(set(raw) - set(INSTANCE_FIELDS))
    if extra:
        raise RequestError(f"{where}{shown(extra)}: unknown field; an instance has {', '.join(INSTANCE_FIELDS)}")
    for field in ("history", "candidates"):
        if field not in raw:
            raise RequestError(f"{where}{field}: missing (a list of item ids{', may be empty' * (field == 'history')})")
    explain = raw.get("explain", False)
    if not isinstance(explain, bool):
        raise RequestError(f"{where}explain: expected true or false, got {type_name(explain)} {explain!r:.60}")
    history = item_ids(f"{where}history", raw["history"], limits)
    candidates = item_ids(f"{where}candidates", raw["candidates"], limits)
    check_counts(where, history, candidates, limits)
    if limits.reject_unknown:
        check_known(where, "candidates", candidates, rankable)
        check_known(where, "history", history, rankable)
    return RankRequest(history=history, candidates=candidates, explain=explain)


def v1_requests(payload: object, limits: Limits, rankable: Callable[[str], bool]) -> list[RankRequest]:
    if not isinstance(payload, dict):
        raise RequestError(f'body: expected a JSON object {{"instances": [...]}}, got {type_name(payload)}')
    extra = sorted(set(payload) - {"instances"})
    if extra:
        raise RequestError(f"body: unknown field {shown(extra)}; a v1 request has only 'instances'")
    instances = payload.get("instances")
    if not isinstance(instances, list) or not instances:
        raise RequestError(f"instances: expected a non-empty list of instances, got {type_name(instances)}")
    if len(instances) > limits.max_instances:
        raise RequestError(f"instances: {len(instances)} instances, at most {limits.max_instances} per request")
    return [instance_request(raw, f"instances[{i}].", limits, rankable) for i, raw in enumerate(instances)]


def tensor_values(tensor) -> list:
    """A v2 input's elements as Python values (JSON data as sent; binary data decoded)."""
    if tensor.data is not None:
        values = tensor.data
    else:
        try:
            values = tensor.as_numpy().ravel().tolist()
        except (ValueError, TypeError) as error:
            raise RequestError(f"input {tensor.name!r}: unreadable binary data ({error})") from error
    if any(isinstance(value, list) for value in values):
        raise RequestError(f"input {tensor.name!r}: nested data; send a 1-D tensor")
    if list(tensor.shape) != [len(values)]:
        raise RequestError(f"input {tensor.name!r}: shape {list(tensor.shape)} but {len(values)} values")
    try:
        return [value.decode("utf-8") if isinstance(value, bytes) else value for value in values]
    except UnicodeDecodeError as error:
        raise RequestError(f"input {tensor.name!r}: item ids must be UTF-8 ({error})") from error


def v2_request(infer_request, limits: Limits, rankable: Callable[[str], bool]) -> list[RankRequest]:
    names = [tensor.name for tensor in infer_request.inputs]
    unknown = sorted(set(names) - set(V2_DATATYPES))
    if unknown:
        raise RequestError(f"inputs: unknown input {shown(unknown)}; expected {', '.join(V2_DATATYPES)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise RequestError(f"inputs: input {shown(repeated)} given more than once")
    instance: dict[str, object] = {}
    for tensor in infer_request.inputs:
        if tensor.datatype != V2_DATATYPES[tensor.name]:
            raise RequestError(
                f"input {tensor.name!r}: datatype {tensor.datatype}, expected {V2_DATATYPES[tensor.name]}"
            )
        instance[tensor.name] = tensor_values(tensor)
    if "explain" in instance:
        flags = instance["explain"]
        if len(flags) != 1:
            raise RequestError(f"input 'explain': {len(flags)} values, expected shape [1]")
        instance["explain"] = flags[0]
    return [instance_request(instance, "", limits, rankable)]
