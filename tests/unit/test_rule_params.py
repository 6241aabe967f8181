import pytest

from stream.rules.params import Param, apply_params, count, duration, money, ratio, string_set


@pytest.mark.parametrize("value, minor", [(0, 0), (1000, 100000), ("12.50", 1250), (0.5, 50)])
def test_money_threshold_in_units(value, minor):
    assert money(value) == minor


@pytest.mark.parametrize("value", [-5, True, "1.234", "x", None, float("nan")])
def test_money_threshold_refuses_what_cannot_be_an_amount(value):
    with pytest.raises(ValueError):
        money(value)


@pytest.mark.parametrize("value", [1.5, -0.1, True, "0.5"])
def test_ratio_outside_zero_one_can_never_be_met(value):
    with pytest.raises(ValueError):
        ratio(value)


def test_count_bounds_and_types():
    parse = count(2, 10)
    assert parse(2) == 2
    for bad in (1, 11, 2.0, True):
        with pytest.raises(ValueError):
            parse(bad)


def test_string_set_resolves_list_references_and_refuses_unknown_ones():
    lists = {"cash_like_mcc": ("6051", "7995")}
    assert string_set("cash_like_mcc", lists.__getitem__) == frozenset({"6051", "7995"})
    assert string_set([6051, "7995"], lists.__getitem__) == frozenset({"6051", "7995"})
    with pytest.raises(ValueError, match="unknown list"):
        string_set("nope", lists.__getitem__)


def test_duration_accepts_analyst_forms():
    assert duration("90s") == 90_000
    assert duration("2h") == 7_200_000
    with pytest.raises(ValueError):
        duration("soon")


def test_a_misspelt_parameter_names_the_nearest_one_of_the_kind():
    specs = (Param("min_ratio", ratio, 0.7, "r"), Param("max_hops", count(1), 3, "h"),
             Param("within", duration, 1, "w"))
    values, problems = apply_params(specs, {"min_raito": 0.9, "colour": "red"}, {}.__getitem__)
    assert problems == [
        ("min_raito", "unknown parameter 'min_raito' (did you mean 'min_ratio'?); this kind takes: min_ratio, "
                      "max_hops, within"),
        ("colour", "unknown parameter 'colour'; this kind takes: min_ratio, max_hops, within"),
    ]
    assert values == {"min_ratio": 0.7, "max_hops": 3, "within": 1}      # the misspelt one is not applied
