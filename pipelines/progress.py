"""What a local run shows while it runs: one line per stage as it starts and ends, and the log of a task
that fails, ended by its cause.

kfp.local prints everything to stdout: its own log lines, and each task's streamed log, which opens with
the task's whole executor input (the full configuration JSON). `watch_run` reads that stream: all of it
goes to OUT/run.log as kfp wrote it, and to the terminal only with `verbose`.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import time
import warnings
from collections.abc import Iterator
from typing import TextIO

ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
KFP_LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} - [A-Z]+ - (.*)$")
TASK_STARTED = re.compile(r"^Executing task '([^']+)'$")
TASK_FINISHED = re.compile(r"^Task '([^']+)' finished with status (SUCCESS|FAILURE)$")
EXECUTOR_INPUT = "Got executor_input:"
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*)(?:: (.*))?$")
TASK_INDENT = "    "  # kfp indents a task's streamed log
SHOWN_LOG_LINES = 40


class StageFailed(RuntimeError):
    """A pipeline task failed; the message is one line: `<stage> failed: <cause>`."""

    def __init__(self, stage: str, cause: str):
        super().__init__(f"{stage} failed: {cause}")
        self.stage = stage
        self.cause = cause


def exception_of(log: list[str]) -> str | None:
    """The exception that ended the last traceback in `log`, as `Type: message` without its module path."""
    starts = [index for index, line in enumerate(log) if line.startswith("Traceback (most recent call last):")]
    if not starts:
        return None
    for line in log[starts[-1] + 1 :]:
        if line and not line.startswith(" "):
            match = EXCEPTION_LINE.match(line)
            return f"{match.group(1)}: {match.group(2)}" if match and match.group(2) else line
    return None


class RunWatcher(io.TextIOBase):
    """A write-only text stream that stands in for stdout while kfp.local runs the pipeline."""

    def __init__(self, task_stages: dict[str, str], terminal: TextIO, log: TextIO, verbose: bool):
        self.task_stages = task_stages
        self.terminal = terminal
        self.log = log
        self.verbose = verbose
        self.pending = ""
        self.task: str | None = None
        self.task_started = 0.0
        self.task_log: list[str] = []
        self.in_executor_input = False
        self.failure: StageFailed | None = None

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.log.write(text)
        if self.verbose:
            self.terminal.write(text)
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.read_line(ANSI_COLOUR.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        self.terminal.flush()

    def stage(self, task: str) -> str:
        return self.task_stages.get(task, task)

    def say(self, line: str) -> None:
        print(line, file=self.terminal, flush=True)

    def read_line(self, line: str) -> None:
        kfp_line = KFP_LOG_LINE.match(line)
        if kfp_line:
            self.read_kfp_message(kfp_line.group(1))
        elif self.task is not None:
            self.read_task_line(line.removeprefix(TASK_INDENT))

    def read_kfp_message(self, message: str) -> None:
        started = TASK_STARTED.match(message)
        finished = TASK_FINISHED.match(message)
        if started:
            self.start(started.group(1))
        elif finished:
            self.finish(finished.group(1), succeeded=finished.group(2) == "SUCCESS")

    def read_task_line(self, line: str) -> None:
        if self.in_executor_input:
            self.in_executor_input = line != "}"  # json.dumps(indent=4) closes the dump with a bare brace
        elif line.endswith(EXECUTOR_INPUT):
            self.in_executor_input = True
        else:
            self.task_log.append(line)

    def start(self, task: str) -> None:
        self.task, self.task_started, self.task_log, self.in_executor_input = task, time.monotonic(), [], False
        self.say(f"{self.stage(task)}: running")

    def finish(self, task: str, succeeded: bool) -> None:
        seconds = time.monotonic() - self.task_started
        self.task = None
        if succeeded:
            self.say(f"{self.stage(task)}: done in {seconds:.1f} s")
            return
        self.say(f"{self.stage(task)}: FAILED after {seconds:.1f} s")
        if not self.verbose:
            self.show_log_end()
        cause = exception_of(self.task_log) or f"the task ended without a Python error; its log is in {self.log.name}"
        self.failure = StageFailed(self.stage(task), cause)

    def show_log_end(self) -> None:
        shown = "\n".join(self.task_log).strip("\n").splitlines()[-SHOWN_LOG_LINES:]
        self.say(f"the last {len(shown)} lines of its log (all of it: {self.log.name}):")
        self.say("\n".join(f"  | {line}" for line in shown))


@contextlib.contextmanager
def watch_run(task_stages: dict[str, str], log: TextIO, verbose: bool) -> Iterator[RunWatcher]:
    """Within the block, stdout goes to `log` and, as stage progress, to stderr; with `verbose` also to stdout
    as kfp wrote it. The watcher's `failure` says which task failed and why."""
    watcher = RunWatcher(task_stages, sys.stdout if verbose else sys.stderr, log, verbose)
    with contextlib.redirect_stdout(watcher), warnings.catch_warnings():
        # the SubprocessRunner warns that our images are not Python images; it runs our venv on purpose
        warnings.filterwarnings("ignore", message="You may be attemping to run a task", category=RuntimeWarning)
        yield watcher
