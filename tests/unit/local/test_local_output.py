"""Children's output: whole lines only, prefixed with the process name on the terminal."""

from __future__ import annotations

import io
from pathlib import Path

from rtm.local.output import LineSplitter, LogFile, TerminalSink


def test_lines_split_across_chunks_are_joined() -> None:
    splitter = LineSplitter()
    assert list(splitter.feed(b"hel")) == []
    assert list(splitter.feed(b"lo\r\nwor")) == [b"hello"]
    assert list(splitter.feed(b"ld\n\n")) == [b"world", b""]
    assert list(splitter.flush()) == []


def test_a_trailing_partial_line_is_kept_until_flushed() -> None:
    splitter = LineSplitter()
    assert list(splitter.feed(b"no newline")) == []
    assert list(splitter.flush()) == [b"no newline"]


def test_an_endless_line_is_cut_instead_of_growing_memory() -> None:
    splitter = LineSplitter(max_line=8)
    assert list(splitter.feed(b"0123456789")) == [b"0123456789"]


def test_terminal_lines_carry_padded_names_and_no_colour_off_a_tty() -> None:
    stream = io.StringIO()
    sink = TerminalSink(["rtm", "producer"], stream)
    sink.write_line("rtm", "starting")
    sink.write_line("producer", "ready")
    assert stream.getvalue() == "rtm      | starting\nproducer | ready\n"


def test_a_closed_terminal_is_ignored_from_then_on() -> None:
    """`rtm up | head` must not crash the runner once head exits."""
    stream = io.StringIO()
    sink = TerminalSink(["a"], stream)
    stream.close()
    sink.write_line("a", "lost")
    sink.write_line("a", "lost too")


def test_log_files_hold_no_ansi_escape_sequences(tmp_path: Path) -> None:
    """A colouring child (uvicorn's `color_message`, a tty-minded tool) still logs plain text."""
    log = LogFile(tmp_path / "x.log")
    log.write(b"Started server process [\x1b[36m42\x1b[0m] \x1b]0;title\x07done")
    log.close()
    assert (tmp_path / "x.log").read_bytes() == b"Started server process [42] done\n"
