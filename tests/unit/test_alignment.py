from stream.worker.alignment import EventTimeAligner


class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def test_holds_events_until_every_active_source_has_passed_them():
    clock = FakeClock()
    aligner = EventTimeAligner(idle_after_ms=1000, clock=clock)
    aligner.add("transfers", 100, "t100")
    aligner.add("transfers", 200, "t200")
    assert aligner.release() == ["t100", "t200"]      # only one source known: its own order
    aligner.add("disbursements", 50, "d50")
    aligner.add("transfers", 300, "t300")
    # disbursements has reached 50 only: t300 must wait, d50 goes
    assert aligner.release() == ["d50"]
    aligner.add("disbursements", 400, "d400")
    assert aligner.release() == ["t300"]
    assert len(aligner) == 1


def test_back_fill_skew_is_reordered_by_event_time():
    clock = FakeClock()
    aligner = EventTimeAligner(clock=clock)
    released = []
    aligner.add("disbursements", 10, "d10")
    for ts in (5, 11, 12, 13):        # transfers run ahead of the disbursements
        aligner.add("transfers", ts, f"t{ts}")
        released += aligner.release()
    aligner.add("disbursements", 12, "d12")
    released += aligner.release()
    aligner.add("disbursements", 20, "d20")
    released += aligner.release()
    assert released == ["t5", "d10", "t11", "t12", "d12", "t13"]


def test_idle_source_stops_holding_back_the_others():
    clock = FakeClock()
    aligner = EventTimeAligner(idle_after_ms=1000, clock=clock)
    aligner.add("disbursements", 10, "d10")
    clock.now = 500
    aligner.add("transfers", 99, "t99")
    assert aligner.release() == ["d10"]
    clock.now = 1600                    # disbursements silent for 1.6 s of wall time
    aligner.add("transfers", 120, "t120")
    # t99 has waited 1.1 s: the silent source no longer holds it. t120 just arrived: it gets its own
    # idle_after for a burst from the quiet source to catch up.
    assert aligner.release() == ["t99"]
    clock.now = 2600
    assert aligner.release() == ["t120"]


def test_a_burst_after_a_quiet_spell_is_still_ordered():
    clock = FakeClock()
    aligner = EventTimeAligner(idle_after_ms=1000, clock=clock)
    aligner.add("disbursements", 10, "d10")
    aligner.add("transfers", 11, "t11")
    assert aligner.release() == ["d10"]
    clock.now = 60_000                  # a minute of silence on both, then a back-fill burst
    assert aligner.release() == ["t11"]
    aligner.add("transfers", 700, "t700")        # spends d600, which its partition delivers 5 ms later
    assert aligner.release() == []
    clock.now += 5
    aligner.add("disbursements", 600, "d600")
    assert aligner.release() == ["d600"]
    clock.now += 1000
    assert aligner.release() == ["t700"]


def test_everything_flushes_when_all_sources_are_idle():
    clock = FakeClock()
    aligner = EventTimeAligner(idle_after_ms=1000, clock=clock)
    aligner.add("a", 30, "a30")
    aligner.add("b", 10, "b10")
    aligner.add("a", 40, "a40")
    assert aligner.release() == ["b10"]
    clock.now = 5000
    assert aligner.release() == ["a30", "a40"]


def test_pending_is_bounded():
    clock = FakeClock()
    aligner = EventTimeAligner(max_pending=3, clock=clock)
    aligner.add("slow", 0, "s0")
    for ts in range(1, 7):
        aligner.add("fast", ts, f"f{ts}")
    out = aligner.release()
    assert out[0] == "s0"
    assert len(aligner) == 3
    assert aligner.forced_releases == 3
    assert out[1:] == ["f1", "f2", "f3"]


def test_equal_timestamps_keep_arrival_order():
    clock = FakeClock()
    aligner = EventTimeAligner(clock=clock)
    aligner.add("a", 5, "first")
    aligner.add("a", 5, "second")
    aligner.add("a", 5, "third")
    assert aligner.release() == ["first", "second", "third"]


def test_forgotten_source_no_longer_holds_watermark():
    clock = FakeClock()
    aligner = EventTimeAligner(clock=clock)
    aligner.add("a", 5, "a5")
    aligner.add("b", 100, "b100")
    assert aligner.release() == ["a5"]
    aligner.forget("a")
    assert aligner.release() == ["b100"]


def test_an_expected_source_holds_events_before_its_first_one():
    clock = FakeClock()
    aligner = EventTimeAligner(idle_after_ms=1000, clock=clock)
    aligner.expect("disbursements")
    aligner.add("transfers", 20, "t20")          # arrives first, spends a disbursement still in flight
    assert aligner.release() == []
    clock.now = 3
    aligner.add("disbursements", 10, "d10")
    assert aligner.release() == ["d10"]
    clock.now = 1003
    assert aligner.release() == ["t20"]         # the disbursements partition went quiet
