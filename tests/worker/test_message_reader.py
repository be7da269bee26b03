"""Reading what a trial process sent: every message, whole and in order."""

from __future__ import annotations

import multiprocessing
import select
import struct

from tune_client.session import encode_message
from tune_worker.trial_processes import MessageReader, _next_frame


def read_until_closed(conn) -> list[tuple]:
    reader = MessageReader(conn)
    received: list[tuple] = []
    closed = False
    while not closed:
        select.select([conn.fileno()], [], [], 5)
        messages, closed = reader.read()
        received.extend(messages)
    return received


def test_small_and_large_messages_arrive_whole_and_in_order():
    worker_end, trial_end = multiprocessing.Pipe(duplex=True)
    big = b"x" * (3 * MessageReader.READ_SIZE + 17)  # spans several reads
    sent = [("result", b'{"i": %d}' % i, None, None) for i in range(500)]
    sent += [("result", big, "checkpoint_000000", "/staged"), ("finished", "")]

    def trial() -> None:
        for message in sent:
            trial_end.send_bytes(encode_message(message))
        trial_end.close()

    sender = multiprocessing.get_context("fork").Process(target=trial)
    sender.start()
    trial_end.close()
    received = read_until_closed(worker_end)
    sender.join(10)
    assert received == sent


def test_a_frame_with_a_long_length_header_is_found_once_whole():
    payload = b"p" * 10
    frame = struct.pack("!i", -1) + struct.pack("!Q", len(payload)) + payload
    buffer = bytearray(frame)
    assert _next_frame(buffer, 0) == (12, 22)
    assert _next_frame(bytearray(frame[:15]), 0) is None
    assert _next_frame(bytearray(frame[:6]), 0) is None
