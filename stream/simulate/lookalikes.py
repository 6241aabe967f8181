"""Benign look-alikes: ordinary activity with the shape of a typology, labelled so false positives show.

A rule pack that fires on these is tuned too loosely: a loan spent at once on a phone is not a cash-out, a
dinner split is not a fan-in of loan money, a payroll run is not a fan-out of a loan, a busy shop is not a
collector, friends paying each other back in a ring are not a cycle of laundered money.
"""

from __future__ import annotations

from typing import Callable

from .world import BIG_TICKET, HOUR, Group, Ledger, World, new_group

Maker = Callable[[World, Ledger], Group]


def loan_spent_at_once(world: World, ledger: Ledger) -> Group:
    """An installment loan (2,000-12,000) spent 1-15 minutes later, 95-100% of it, in one purchase at an
    electronics, furniture or appliance merchant (5732 / 5712 / 5722): buying the phone the loan was for."""
    rng = world.rng
    borrower = world.reserve(1, "loan_spent_at_once")[0]
    group = new_group("loan_spent_at_once", borrower.account_id, [borrower])
    ts = world.instance_start(HOUR)
    amount = world.amount(2000, 12000, whole=True)
    seq, loan = ledger.disburse(ts, borrower, amount, "installment")
    group.add(seq)
    group.loans.append(loan)
    mcc = BIG_TICKET[int(rng.random() * len(BIG_TICKET))]
    group.add(ledger.transfer(ts + world.minutes(1, 15), borrower, world.merchant(mcc),
                              int(amount * (0.95 + 0.05 * rng.random())), "merchant", mcc))
    return group


def dinner_split(world: World, ledger: Ledger) -> Group:
    """One friend pays a restaurant (5812) 300-2,000; 3-6 others pay back their share (whole units)
    5 minutes to 3 hours later: a small fan-in that is not loan money."""
    rng = world.rng
    guests = rng.randint(3, 6)
    people = world.reserve(guests + 1, "dinner_split")
    payer = people[0]
    group = new_group("dinner_split", payer.account_id, people)
    ts = world.instance_start(4 * HOUR)
    bill = world.amount(300, 2000)
    group.add(ledger.transfer(ts, payer, world.merchant("5812"), bill, "merchant", "5812"))
    share = max(100, bill // (guests + 1) // 100 * 100)
    for guest in people[1:]:
        group.add(ledger.transfer(ts + world.minutes(5, 180), guest, payer.account_id, share))
    return group


def payroll_fan_out(world: World, ledger: Ledger) -> Group:
    """A company account pays 10-40 salaries (4,000-25,000) one to five seconds apart from its payroll
    server; a third of the employees withdraw 20-50% of it 30 minutes to 6 hours later. A fan-out followed by
    cash-outs, of salary, not loan money."""
    rng = world.rng
    staff = rng.randint(10, 40)
    company = world.new_business()
    employees = world.reserve(staff, "payroll_fan_out")
    group = new_group("payroll_fan_out", company.account_id, [company, *employees])
    ts = world.instance_start(8 * HOUR)
    for employee in employees:
        salary = world.amount(4000, 25000, whole=True)
        group.add(ledger.transfer(ts, company, employee.account_id, salary))
        if rng.random() < 1 / 3:
            part = max(100, int(salary * (0.2 + 0.3 * rng.random())) // 10000 * 10000)
            group.add(ledger.transfer(ts + world.minutes(30, 360), employee, employee.card, part, "withdrawal"))
        ts += 1000 + int(rng.random() * 4000)
    return group


def merchant_collection(world: World, ledger: Ledger) -> Group:
    """A busy shop (supermarket 5411, restaurant 5812 or fast food 5814) takes 15-40 payments from distinct
    customers within 1-2 hours. The merchant id is the key and comes first in `accounts`."""
    rng = world.rng
    mcc = ("5411", "5812", "5814")[int(rng.random() * 3)]
    shop = world.reserve_merchant(mcc)
    count = rng.randint(15, 40)
    customers = world.reserve(count, "merchant_collection")
    group = new_group("merchant_collection", shop, [shop, *customers])
    span = world.minutes(60, 120)
    ts = world.instance_start(span)
    for customer in customers:
        group.add(ledger.transfer(ts + int(rng.random() * span), customer, shop,
                                  world.amount(10, 400), "merchant", mcc))
    return group


def friends_p2p(world: World, ledger: Ledger) -> Group:
    """3-5 friends settle up over an evening: a ring of p2p payments back to the first friend (unrelated
    amounts of 50-800, 30 minutes to 3 hours apart) plus one or two extra payments inside the group."""
    rng = world.rng
    size = rng.randint(3, 5)
    friends = world.reserve(size, "friends_p2p")
    group = new_group("friends_p2p", friends[0].account_id, friends)
    ts = world.instance_start(18 * HOUR)
    ring = [*friends, friends[0]]
    for src, dst in zip(ring, ring[1:]):
        group.add(ledger.transfer(ts, src, dst.account_id, world.amount(50, 800, whole=rng.random() < 0.7)))
        ts += world.minutes(30, 180)
    for _ in range(rng.randint(1, 2)):
        src, dst = rng.sample(friends, 2)
        group.add(ledger.transfer(ts, src, dst.account_id, world.amount(20, 300, whole=True)))
        ts += world.minutes(5, 60)
    return group


MAKERS: dict[str, Maker] = {
    "loan_spent_at_once": loan_spent_at_once,
    "dinner_split": dinner_split,
    "payroll_fan_out": payroll_fan_out,
    "merchant_collection": merchant_collection,
    "friends_p2p": friends_p2p,
}
