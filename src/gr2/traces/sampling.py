"""Trace generation with rejection or targeted sampling, appended to a JSONL file as it is produced.

Examples are processed in rounds of `batch_size`; each round's records are appended (and flushed) when
the round ends, and a restarted run skips every example already in the file, so a crash loses at most
one round.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from gr2.data.schema import Item
from gr2.data.split import stable_fraction
from gr2.prerank.candidates import RerankExample
from gr2.sid.sidmap import SidMap
from gr2.traces.config import PromptConfig, TeacherConfig
from gr2.traces.parse import parse_ranking
from gr2.traces.prompt import build_messages
from gr2.traces.teachers import Teacher, TeacherRequest, targeted_hint


def example_key(example: RerankExample) -> str:
    return f"{example.split}:{example.user_id}"


def read_done_keys(path: Path) -> set[str]:
    if not path.exists():
        return set()
    keys = set()
    with path.open() as handle:
        for line in handle:
            try:
                keys.add(json.loads(line)["key"])
            except (json.JSONDecodeError, KeyError):
                break  # a torn last line from a crash: regenerated on this run
    return keys


def append_records(path: Path, records: Sequence[dict]) -> None:
    with path.open("a") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)
        handle.flush()


def request_for(
    example: RerankExample,
    catalog: dict[str, Item],
    sids: SidMap,
    prompt: PromptConfig,
    config: TeacherConfig,
    seed: int,
) -> TeacherRequest:
    messages = build_messages(example.history, example.candidates, catalog, sids, prompt)
    hint = example.target if config.mode == "targeted" else None
    if hint is not None:
        messages[-1] = {**messages[-1], "content": messages[-1]["content"] + targeted_hint(sids.text(hint))}
    return TeacherRequest(messages, example.history, example.candidates, seed, hint)


def judge(answer: str, example: RerankExample, sids: SidMap) -> str | None:
    """None when the answer is accepted (valid and the held-out item first), else the rejection reason."""
    parsed = parse_ranking(answer, example.candidates, sids)
    if not parsed.valid:
        return parsed.failure
    return None if parsed.ranking[0] == example.target else "top1_not_target"


def sample_seed(seed: int, example: RerankExample, attempt: int) -> int:
    return int(stable_fraction(f"{example_key(example)}#{attempt}", f"trace-{seed}") * 2**31)


@dataclass
class Outcome:
    example: RerankExample
    request: TeacherRequest
    answer: str = ""
    tries: int = 0
    rejections: list[str] = field(default_factory=list)
    accepted: bool = False

    def record(self, teacher: str) -> dict:
        e = self.example
        return {
            "key": example_key(e),
            "split": e.split,
            "user_id": e.user_id,
            "history": list(e.history),
            "candidates": list(e.candidates),
            "target": e.target,
            "messages": self.request.messages,
            "answer": self.answer,
            "accepted": self.accepted,
            "tries": self.tries,
            "rejections": self.rejections,
            "teacher": teacher,
        }


def sample_with_retries(
    outcomes: list[Outcome], teacher: Teacher, sids: SidMap, tries: int, seed: int
) -> list[Outcome]:
    """Each round asks the teacher again for every example not yet accepted, with a fresh seed."""
    for attempt in range(tries):
        pending = [o for o in outcomes if not o.accepted]
        if not pending:
            break
        requests = [replace(o.request, seed=sample_seed(seed, o.example, attempt)) for o in pending]
        for outcome, answer in zip(pending, teacher.generate(requests), strict=True):
            outcome.tries += 1
            outcome.answer = answer
            reason = judge(answer, outcome.example, sids)
            outcome.accepted = reason is None
            if reason is not None:
                outcome.rejections.append(reason)
    return outcomes


def generate_traces(
    examples: Sequence[RerankExample],
    teacher: Teacher,
    catalog: dict[str, Item],
    sids: SidMap,
    prompt: PromptConfig,
    config: TeacherConfig,
    seed: int,
    out_path: Path,
) -> None:
    """Sample traces for every example not already in `out_path`, appending after each round."""
    done = read_done_keys(out_path)
    todo = [e for e in examples if example_key(e) not in done]
    tries = config.max_tries if config.mode == "rejection" else 1
    progress = tqdm(total=len(examples), initial=len(examples) - len(todo), desc=f"traces ({teacher.name})")
    for start in range(0, len(todo), config.batch_size):
        chunk = todo[start : start + config.batch_size]
        outcomes = [Outcome(e, request_for(e, catalog, sids, prompt, config, seed)) for e in chunk]
        sample_with_retries(outcomes, teacher, sids, tries, seed)
        append_records(out_path, [o.record(teacher.name) for o in outcomes])
        progress.update(len(chunk))
        progress.set_postfix(accepted=sum(o.accepted for o in outcomes))
    progress.close()


def read_traces(path: Path) -> list[dict]:
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def trace_metrics(records: Sequence[dict]) -> dict[str, float]:
    """Acceptance rate, tries per kept example, and the count of each rejection reason."""
    kept = [r for r in records if r["accepted"]]
    reasons = Counter(reason for r in records for reason in r["rejections"])
    metrics = {
        "examples": len(records),
        "accepted": len(kept),
        "acceptance_rate": len(kept) / len(records) if records else 0.0,
        "tries_per_kept_example": sum(r["tries"] for r in kept) / len(kept) if kept else 0.0,
        "samples": sum(r["tries"] for r in records),
    }
    metrics.update({f"rejected_{reason}": count for reason, count in sorted(reasons.items())})
    return metrics
