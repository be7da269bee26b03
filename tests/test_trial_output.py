"""Trials' output as watchers see it: whole lines led by the trial's name,
within a budget, and only the latest of it kept by the head."""

from __future__ import annotations

from proto.generated import tune_pb2
from tune_client.trial_output import STDERR, STDOUT, OutputBudget, OutputLines
from tune_head.head import Experiment


def test_lines_are_printed_whole_and_prefixed():
    lines = OutputLines()
    assert (
        lines.take("t1", "train_t1", STDOUT, b"epoch 1\nepo") == "(train_t1) epoch 1\n"
    )
    assert lines.take("t1", "train_t1", STDOUT, b"ch 2") == ""
    assert lines.take("t1", "train_t1", STDOUT, b"\n\nok\n") == (
        "(train_t1) epoch 2\n(train_t1) \n(train_t1) ok\n"
    )


def test_streams_and_trials_keep_their_unfinished_lines_apart():
    lines = OutputLines()
    assert lines.take("t1", "a", STDOUT, b"out of a") == ""
    assert lines.take("t1", "a", STDERR, b"err of a\n") == "(a) err of a\n"
    assert lines.take("t2", "b", STDOUT, b"out of b\n") == "(b) out of b\n"
    assert lines.finish("t1", "a") == [(STDOUT, "(a) out of a\n")]
    assert lines.finish("t1", "a") == []


def test_a_long_unfinished_line_is_printed_without_waiting():
    lines = OutputLines()
    bar = b"\r 50%|#####     |" * 400  # a progress bar redrawing itself
    assert lines.take("t1", "a", STDERR, bar).startswith("(a) ")


def test_bytes_that_are_not_utf8_are_shown_replaced():
    lines = OutputLines()
    assert lines.take("t1", "a", STDOUT, b"caf\xe9\n") == "(a) caf\ufffd\n"


def test_the_budget_allows_a_burst_then_a_rate_and_notes_what_it_dropped():
    budget = OutputBudget(now=0.0, bytes_per_s=1024)
    burst = b"x" * (4 * 1024 - 1) + b"\n"  # four seconds' worth
    assert budget.admit(burst, now=0.0) == burst
    assert budget.admit(b"dropped", now=0.0) is None
    one_second = b"y" * 1024
    passed = budget.admit(one_second, now=1.0)
    assert passed == (
        b"[7 bytes of this trial's output not shown: it wrote faster than "
        b"1 KiB/s. The worker's own output has all of it.]\n" + one_second
    )
    assert budget.admit(b"z", now=1.0) is None  # spent again
    # What was passed on ended mid-line: the next note starts a line of its own.
    assert budget.admit(b"later\n", now=2.0).startswith(b"\n[1 bytes")


def test_a_budget_of_zero_passes_everything():
    budget = OutputBudget(now=0.0, bytes_per_s=0)
    flood = b"x" * (64 << 20)
    assert budget.admit(flood, now=0.0) == flood
    assert budget.admit(flood, now=0.0) == flood


def output_event(trial_id: str, data: bytes) -> tune_pb2.TrialOutput:
    return tune_pb2.TrialOutput(trial_id=trial_id, stream=STDOUT, data=data)


def test_the_head_keeps_only_the_latest_output_for_late_watchers():
    experiment = Experiment("exp", None, None, b"", output_kept_limit=100)
    for index in range(10):
        experiment.add_output(output_event("t1", bytes([65 + index]) * 30))

    events = experiment.events
    assert [event.sequence for event in events] == list(range(1, 11))
    assert [event.WhichOneof("kind") for event in events] == [None] * 7 + ["output"] * 3
    assert [event.output.data[:1] for event in events[7:]] == [b"H", b"I", b"J"]
    assert experiment.output_kept_bytes == 90


def test_one_output_larger_than_the_limit_is_still_kept_until_the_next():
    experiment = Experiment("exp", None, None, b"", output_kept_limit=10)
    experiment.add_output(output_event("t1", b"x" * 50))
    assert experiment.events[0].output.data == b"x" * 50
    experiment.add_output(output_event("t1", b"y" * 5))
    assert experiment.events[0].WhichOneof("kind") is None
    assert experiment.events[1].output.data == b"y" * 5
