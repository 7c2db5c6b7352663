"""What a local run shows: pipelines.progress reading kfp.local's output (the format of kfp 2.17)."""

import io
import sys

import pytest

from pipelines.progress import RunWatcher, StageFailed, exception_of, watch_run

TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "x.py", line 1, in <module>',
    "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
    "",
    "The above exception was the direct cause of the following exception:",
    "",
    "Traceback (most recent call last):",
    '  File "gr2/data/loading.py", line 80, in load_items',
    "    raise DatasetError(...)",
    "gr2.data.errors.DatasetError: /data/items.jsonl.gz:4: not valid JSON (Expecting value)",
]


def kfp_task_output(task: str, status: str, log: list[str]) -> str:
    """One task as kfp.local prints it: coloured log lines around the task's indented log, which opens with
    the executor input."""
    executor_input = ["[KFP Executor 2026-01-01 00:00:00,000 INFO]: Got executor_input:", "{", '    "inputs": {}', "}"]
    streamed = "".join(f"    {line}\n" for line in [*executor_input, *log])
    return (
        f"12:00:00.000 - INFO - Executing task \x1b[96m'{task}'\x1b[0m\n"
        f"12:00:00.001 - INFO - Streamed logs:\n\n{streamed}\n"
        f"12:00:01.000 - INFO - Task \x1b[96m'{task}'\x1b[0m finished with status \x1b[91m{status}\x1b[0m\n"
        "--------------------\n"
    )


def watched(tmp_path, text: str, verbose=False, chunk=None) -> tuple[RunWatcher, str, str]:
    terminal = io.StringIO()
    with (tmp_path / "run.log").open("w") as log:
        watcher = RunWatcher({"dapo-2": "dapo_naive"}, terminal, log, verbose)
        chunk = chunk or len(text)
        for start in range(0, len(text), chunk):
            watcher.write(text[start : start + chunk])
    return watcher, terminal.getvalue(), (tmp_path / "run.log").read_text()


def test_a_succeeding_task_is_two_lines_and_its_log_stays_in_the_file(tmp_path):
    text = kfp_task_output("data", "SUCCESS", ["loading items", "wrote 1,000 users"])
    watcher, shown, log = watched(tmp_path, text)
    assert [line.split(" in ")[0] for line in shown.splitlines()] == ["data: running", "data: done"]
    assert log == text and watcher.failure is None


def test_a_failing_task_shows_its_log_without_the_executor_input_and_names_the_cause(tmp_path):
    watcher, shown, _ = watched(tmp_path, kfp_task_output("dapo-2", "FAILURE", ["step 1", *TRACEBACK]))
    assert "dapo_naive: FAILED after" in shown and "step 1" in shown and TRACEBACK[-1] in shown
    assert "executor_input" not in shown and '"inputs"' not in shown
    cause = "DatasetError: /data/items.jsonl.gz:4: not valid JSON (Expecting value)"
    assert str(watcher.failure) == f"dapo_naive failed: {cause}"


def test_output_cut_anywhere_reads_the_same(tmp_path):
    text = kfp_task_output("sid", "SUCCESS", ["a"]) + kfp_task_output("dapo-2", "FAILURE", TRACEBACK)
    whole, shown, _ = watched(tmp_path, text)
    piecewise, shown_piecewise, _ = watched(tmp_path, text, chunk=7)
    assert shown_piecewise.replace("0.0 s", "") == shown.replace("0.0 s", "")
    assert str(piecewise.failure) == str(whole.failure)


def test_verbose_passes_everything_through(tmp_path):
    text = kfp_task_output("data", "SUCCESS", ["loading items"])
    _, shown, _ = watched(tmp_path, text, verbose=True)
    assert "Got executor_input:" in shown and "loading items" in shown


def test_a_task_that_dies_without_a_traceback_points_to_the_log(tmp_path):
    watcher, _, _ = watched(tmp_path, kfp_task_output("midtrain", "FAILURE", ["step 3 of 100"]))
    assert str(watcher.failure).startswith("midtrain failed: the task ended without a Python error")
    assert str(tmp_path / "run.log") in str(watcher.failure)


@pytest.mark.parametrize(
    ("log", "cause"),
    [
        (["no error here"], None),
        (["Traceback (most recent call last):", '  File "x.py", line 1', "KeyError: 'title'"], "KeyError: 'title'"),
        (["Traceback (most recent call last):", '  File "x.py", line 1', "KeyboardInterrupt"], "KeyboardInterrupt"),
    ],
)
def test_exception_of_the_last_traceback(log, cause):
    assert exception_of(log) == cause


def test_watch_run_reads_stdout_and_restores_it(tmp_path):
    stdout = sys.stdout
    with (tmp_path / "run.log").open("w") as log, watch_run({}, log, verbose=False) as watcher:
        print(kfp_task_output("data", "FAILURE", TRACEBACK), end="")
    assert isinstance(watcher.failure, StageFailed) and watcher.failure.stage == "data"
    assert "Got executor_input" in (tmp_path / "run.log").read_text()
    assert sys.stdout is stdout
