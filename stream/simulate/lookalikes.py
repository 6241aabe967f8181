"""Benign look-alikes: ordinary activity with the shape of a typology, labelled so false positives show.

A rule pack that fires on these is tuned too loosely: a loan spent at once on a phone is not a cash-out, a
dinner split is not a fan-in of loan money, a payroll run is not a fan-out of a loan, a busy shop is not a
collector, friends paying each other back in a ring are not a cycle of laundered money.
"""

from __future__ import annotations

from typing import Callable

from .world import BIG_TICKET, DAY, HOUR, LOAN_SPENDING, Account, Group, Ledger, World, new_group, split

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


def _spend(world: World, ledger: Ledger, group: Group, account: Account, amount: int, ts: int, days: float) -> None:
    """Purchases at big-ticket and everyday shops adding up to `amount`, spread over the following `days`."""
    rng = world.rng
    for piece in split(world, amount, rng.randint(2, 5), jitter=0.6):
        when = ts + HOUR + int(rng.random() * days * DAY)
        if when < world.end:
            mcc = LOAN_SPENDING[int(rng.random() * len(LOAN_SPENDING))]
            group.add(ledger.transfer(when, account, world.merchant(mcc), piece, "merchant", mcc))


def _borrow(world: World, ledger: Ledger, group: Group, ts: int, account: Account, low: int, high: int,
            device: str | None = None, ip: str | None = None) -> int:
    amount = world.amount(low, high, whole=True)
    seq, loan = ledger.disburse(ts, account, amount, "credit_line", device, ip)
    group.add(seq)
    group.loans.append(loan)
    return amount


def shared_household(world: World, ledger: Ledger) -> Group:
    """A couple on one phone and one home network: both borrow (1,000-8,000) within a day or two and spend
    it over the following days; one pays the other back 10-40% of it."""
    rng = world.rng
    one, two = world.open_accounts(2)
    device, ip = world.new_device(), world.new_ip()
    one, two = (Account(a.account_id, device, ip, a.card, a.community) for a in (one, two))
    group = new_group("shared_household", one.account_id, [one, two])
    apart = world.fit(2 * DAY)
    ts = world.instance_start(apart + HOUR)
    first = _borrow(world, ledger, group, ts, one, 1000, 8000, device, ip)
    _spend(world, ledger, group, one, int(first * 0.6), ts, 2)
    later = ts + int(rng.random() * apart)
    second = _borrow(world, ledger, group, later, two, 1000, 8000, device, ip)
    _spend(world, ledger, group, two, int(second * 0.7), later, 2)
    when = later + world.minutes(60, 600)
    if when < world.end:
        group.add(ledger.transfer(when, two, one.account_id, int(second * (0.1 + 0.3 * rng.random()))))
    return group


def campus_network(world: World, ledger: Ledger) -> Group:
    """A dormitory's Wi-Fi: 10-30 students on their own phones behind one IP; a third of them borrow
    (1,000-6,000) over three days and spend it at shops; a few withdraw 20-50% of it a day or two later."""
    rng = world.rng
    students = world.open_accounts(rng.randint(10, 30))
    ip = world.new_ip()
    students = [Account(s.account_id, s.device, ip, s.card, s.community) for s in students]
    group = new_group("campus_network", f"ip:{ip}", [])
    days = world.fit(3 * DAY)
    start = world.instance_start(days)
    for student in students:
        if rng.random() >= 1 / 3:
            continue
        group.accounts.append(student.account_id)
        ts = start + int(rng.random() * days)
        amount = _borrow(world, ledger, group, ts, student, 1000, 6000, ip=ip)
        _spend(world, ledger, group, student, int(amount * (0.4 + 0.5 * rng.random())), ts, 3)
        if rng.random() < 0.3:
            when = ts + DAY + int(rng.random() * DAY)
            if when < world.end:
                group.add(ledger.transfer(when, student, student.card,
                                          max(10000, int(amount * (0.2 + 0.3 * rng.random())) // 10000 * 10000),
                                          "withdrawal", ip=ip))
    return group


def new_phone(world: World, ledger: Ledger) -> Group:
    """An owner buys a new phone: ordinary purchases from the old one, then, on the new phone at home (same IP),
    a loan (2,000-15,000) spent over the following days, part of it (20-50%) paid to a relative."""
    rng = world.rng
    owner, relative = world.open_accounts(2)
    group = new_group("new_phone", owner.account_id, [owner])
    ts = world.instance_start(world.fit(3 * HOUR), after=int(2.2 * DAY))
    for _ in range(rng.randint(2, 5)):      # the owner's history on the old phone
        ledger.transfer(max(world.start, ts - world.minutes(25 * 60, 48 * 60)), owner, world.merchant("5411"),
                        world.amount(15, 200), "merchant", "5411")
    device = world.new_device()
    amount = _borrow(world, ledger, group, ts, owner, 2000, 15000, device, owner.ip)
    _spend(world, ledger, group, owner, int(amount * 0.5), ts, 3)
    when = ts + world.minutes(180, 1440)
    if when < world.end:
        group.add(ledger.transfer(when, owner, relative.account_id, int(amount * (0.2 + 0.3 * rng.random())),
                                  device=device))
        group.accounts.append(relative.account_id)
    return group


def family_relay(world: World, ledger: Ledger) -> Group:
    """A parent borrows (5,000-20,000) for a child's fees and passes 90-100% of it on 2-8 hours later; the child
    pays the school (8299) or a landlord 3-12 hours after that: a loan moved along a family over a day."""
    rng = world.rng
    parent, child, landlord = world.open_accounts(3)
    group = new_group("family_relay", parent.account_id, [parent, child])
    ts = world.instance_start(DAY)
    amount = _borrow(world, ledger, group, ts, parent, 5000, 20000)
    ts += world.minutes(120, 480)
    passed = int(amount * (0.9 + 0.1 * rng.random()))
    group.add(ledger.transfer(ts, parent, child.account_id, passed))
    ts += world.minutes(180, 720)
    if rng.random() < 0.5:
        group.add(ledger.transfer(ts, child, world.merchant("8299"), int(passed * 0.95), "merchant", "8299"))
    else:
        group.add(ledger.transfer(ts, child, landlord.account_id, int(passed * 0.95)))
    return group


def small_business_p2p(world: World, ledger: Ledger) -> Group:
    """A market stall paid by p2p transfer: 8-25 customers pay it 20-600 each over a 2-6 hour market day; one
    in five took a small loan (500-2,000) that morning and pays from it. The owner banks the takings at the
    end of the day (a withdrawal of most of them)."""
    rng = world.rng
    stall = world.new_business()
    customers = world.open_accounts(rng.randint(8, 25))
    group = new_group("small_business_p2p", stall.account_id, [stall, *customers])
    span = world.minutes(120, 360)
    start = world.instance_start(span + 2 * HOUR)
    takings = 0
    for customer in customers:
        when = start + int(rng.random() * span)
        paid = world.amount(20, 600)
        if rng.random() < 0.2:
            loan = _borrow(world, ledger, group, when - world.minutes(60, 180), customer, 500, 2000)
            paid = min(loan, paid)
        group.add(ledger.transfer(when, customer, stall.account_id, paid))
        takings += paid
    group.add(ledger.transfer(start + span + world.minutes(10, 60), stall, stall.card,
                              max(10000, int(takings * 0.9) // 10000 * 10000), "withdrawal"))
    return group


def friend_repays(world: World, ledger: Ledger) -> Group:
    """A friend lends 3,000-10,000 of their own money and is repaid in full 6-30 hours later: A -> B -> A with
    a large sum, over a day."""
    lender, borrower = world.open_accounts(2)
    group = new_group("friend_repays", lender.account_id, [lender, borrower])
    ts = world.instance_start(31 * HOUR)
    amount = world.amount(3000, 10000, whole=True)
    group.add(ledger.transfer(ts, lender, borrower.account_id, amount))
    group.add(ledger.transfer(ts + world.minutes(360, 1800), borrower, lender.account_id, amount))
    return group


MAKERS: dict[str, Maker] = {
    "loan_spent_at_once": loan_spent_at_once,
    "dinner_split": dinner_split,
    "payroll_fan_out": payroll_fan_out,
    "merchant_collection": merchant_collection,
    "friends_p2p": friends_p2p,
    "shared_household": shared_household,
    "campus_network": campus_network,
    "new_phone": new_phone,
    "family_relay": family_relay,
    "small_business_p2p": small_business_p2p,
    "friend_repays": friend_repays,
}
