"""One resume asked at a time, and what to write as the server answers (rtm.client.resumes)."""

from __future__ import annotations

from rtm.client.resumes import Resumes, refuses_resume

WS = "ws://h/v1/ws"
REFUSED = {"type": "error", "code": "validation_failed", "field": "cursors", "message": "no"}
UNAVAILABLE = {"type": "error", "code": "unavailable", "retry_after_ms": 100, "message": "down"}


def ids(n: int) -> dict[str, int]:
    return {f"c{i:04d}": i for i in range(n)}


def sizes(frames: list[dict[str, object]]) -> list[int]:
    return [len(f["cursors"]) for f in frames]  # type: ignore[arg-type]


def test_cursors_in_the_url_need_no_frame_unless_refused() -> None:
    resumes = Resumes()
    assert resumes.url(WS, {"a": 3}) == f"{WS}?cursors=a:3"
    assert resumes.opened() == []
    assert resumes.asking
    assert resumes.resumed() == []
    assert not resumes.asking


def test_cursors_refused_in_the_url_are_written_as_a_resume_frame() -> None:
    resumes = Resumes()
    resumes.url(WS, {"a": 3, "b": 4})
    resumes.opened()
    assert resumes.refused(REFUSED) == (True, [{"type": "resume", "cursors": {"a": 3, "b": 4}}])


def test_a_refused_frame_is_split_in_halves_and_the_size_is_kept() -> None:
    resumes = Resumes()
    resumes.url(WS, ids(8))
    resumes.opened()
    handled, frames = resumes.refused(REFUSED)  # the URL's
    assert (handled, sizes(frames)) == (True, [8])
    handled, frames = resumes.refused(REFUSED)  # the frame of 8
    assert (handled, sizes(frames)) == (True, [4])
    assert resumes.limit == 4
    assert sizes(resumes.resumed()) == [4]
    assert resumes.resumed() == []
    resumes.down()
    assert resumes.url(WS, ids(8)) == f"{WS}?resume=1", "the next connection uses what it learned"
    assert sizes(resumes.opened()) == [4]


def test_many_frames_are_written_one_after_the_answer_to_the_other() -> None:
    resumes = Resumes()
    assert resumes.url(WS, ids(2500)) == f"{WS}?resume=1"
    assert sizes(resumes.opened()) == [1000]
    assert sizes(resumes.resumed()) == [1000]
    assert sizes(resumes.resumed()) == [500]
    assert resumes.resumed() == []


def test_unavailable_schedules_one_retry_of_the_asked_resume_only() -> None:
    resumes = Resumes()
    resumes.url(WS, ids(2500))
    first = resumes.opened()
    assert resumes.unavailable() is True
    assert resumes.unavailable() is False, "a retry is pending already"
    assert resumes.retry() == first
    assert resumes.retry() == []
    assert sizes(resumes.resumed()) == [1000]


def test_unavailable_for_the_urls_cursors_retries_them_as_a_frame() -> None:
    resumes = Resumes()
    resumes.url(WS, {"a": 3})
    resumes.opened()
    assert resumes.unavailable() is True
    assert resumes.retry() == [{"type": "resume", "cursors": {"a": 3}}]


def test_other_errors_are_not_a_resume_s_answer() -> None:
    resumes = Resumes()
    resumes.url(WS, {"a": 3})
    assert resumes.refused({"code": "rate_limited"}) == (False, [])
    assert refuses_resume({"code": "validation_failed", "field": "cursors.x"})
    assert refuses_resume({"code": "validation_failed", "field": "resume"})
    assert not refuses_resume({"code": "validation_failed", "field": "seq"})
    resumes.resumed()
    assert resumes.refused(REFUSED) == (False, []), "nothing asked"
    assert resumes.unavailable() is False
