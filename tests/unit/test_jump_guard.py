from stream.detection.jump_guard import JumpGuard

DAY = 86_400_000
T0 = 1_500_000_000_000


def test_events_within_a_day_pass_straight_through():
    guard = JumpGuard()
    verdict = guard.offer(T0 + DAY - 1, "e1", "e1", watermark=T0)
    assert verdict.released == ["e1"] and verdict.refused == []
    assert guard.offer(T0, "e0", "e0", watermark=None).released == ["e0"]


def test_a_lone_far_ahead_event_is_refused_when_the_stream_carries_on():
    guard = JumpGuard(confirm_after=3)
    held = guard.offer(T0 + 7 * DAY, "typo", "typo", watermark=T0)
    assert held.released == [] and held.refused == [] and guard.holding == 1
    verdict = guard.offer(T0 + 1000, "next", "next", watermark=T0)
    assert verdict.released == ["next"]
    assert [(item, error.reason) for item, error in verdict.refused] == [("typo", "absurd_timestamp")]
    assert "more than a day ahead" in str(verdict.refused[0][1])
    assert guard.holding == 0


def test_a_real_jump_is_confirmed_by_the_events_after_it_and_nothing_is_lost():
    guard = JumpGuard(confirm_after=3)
    after_gap = T0 + 2 * DAY
    assert guard.offer(after_gap, "a", "a", watermark=T0).released == []
    assert guard.offer(after_gap + 1000, "b", "b", watermark=T0).released == []
    verdict = guard.offer(after_gap + 2000, "c", "c", watermark=T0)
    assert verdict.released == ["a", "b", "c"] and verdict.refused == []
    assert guard.jumps_confirmed == 1


def test_far_ahead_events_that_disagree_do_not_confirm_each_other():
    guard = JumpGuard(confirm_after=2)
    guard.offer(T0 + 10 * DAY, "x", "x", watermark=T0)
    verdict = guard.offer(T0 + 30 * DAY, "y", "y", watermark=T0)
    assert [item for item, _ in verdict.refused] == ["x"]
    assert guard.holding == 1


def test_flush_refuses_what_was_never_confirmed():
    guard = JumpGuard(confirm_after=3)
    guard.offer(T0 + 5 * DAY, "late-typo", "late-typo", watermark=T0)
    verdict = guard.flush(watermark=T0)
    assert [item for item, _ in verdict.refused] == ["late-typo"]
    assert guard.flush(watermark=T0).refused == []
