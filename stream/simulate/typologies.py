"""Planted laundering of loan money, one function per typology (the kinds the rules detect).

Each instance takes fresh accounts (`World.reserve`), starts with one or more disbursements, and moves the
money within minutes to a few hours, as fraud on consumer credit does: the faster it leaves, the less the
lender can claw back. Shapes follow the AMLSim / AMLworld typologies (fan-in, fan-out, cycle, scatter-gather,
gather-scatter, stacked / random chains). Every duration and share below is documented in docs/simulator.md.
"""

from __future__ import annotations

from typing import Callable

from .world import (CASH_LIKE, LOAN_PRODUCTS, LOAN_SPENDING, MINUTE, Account, Group, Ledger, World, keep_most,
                    new_group, split)

Planter = Callable[[World, Ledger], Group]


def cash_out(world: World, ledger: Ledger, group: Group, ts: int, account: Account, amount: int) -> int:
    """Money leaves the ledger: to the account's card (in one or two withdrawals) or to a cash-like merchant
    (quasi-cash 6051, gambling 7995, money transfer 4829, stored value 6540). Returns the last event time.
    A variant with a `cashout_share` (evasive: 60-85%) withdraws only that share of it, in several pieces 2-15
    minutes (times the pace) apart."""
    rng = world.rng
    share = world.variant.cashout_share
    if share is not None:
        low, width = share
        pieces = split(world, int(amount * (low + width * rng.random())), rng.randint(*world.variant.pieces),
                       jitter=0.4)
        for piece in pieces:
            group.add(ledger.transfer(ts, account, account.card, piece, "withdrawal"))
            ts += world.minutes(2, 15)
        return ts
    if rng.random() < 0.7:
        parts = 1 if rng.random() < 0.6 else 2
        for piece in split(world, amount, parts, jitter=0.2):
            group.add(ledger.transfer(ts, account, account.card, piece, "withdrawal"))
            ts += world.minutes(0.2, 3)
        return ts
    mcc = CASH_LIKE[int(rng.random() * len(CASH_LIKE))]
    group.add(ledger.transfer(ts, account, world.merchant(mcc), amount, "merchant", mcc))
    return ts


def _loan(world: World, ledger: Ledger, group: Group, ts: int, account: Account, low: int, high: int,
          device: str | None = None, ip: str | None = None) -> int:
    amount = world.amount(low, high, whole=True)
    product = LOAN_PRODUCTS[int(world.rng.random() * len(LOAN_PRODUCTS))]
    seq, loan = ledger.disburse(ts, account, amount, product, device, ip)
    group.add(seq)
    group.loans.append(loan)
    return amount


def rapid_cashout(world: World, ledger: Ledger) -> Group:
    """A loan (3,000-50,000) leaves within minutes: withdrawn directly (half of the instances), or passed to
    a mule first who withdraws it or spends it at a cash-like merchant; 95-100% of the loan goes."""
    rng = world.rng
    via_mule = rng.random() < 0.5
    accounts = world.reserve(2 if via_mule else 1, "rapid_cashout")
    borrower = accounts[0]
    group = new_group("rapid_cashout", borrower.account_id, accounts)
    ts = world.instance_start(2 * 60 * MINUTE)
    amount = _loan(world, ledger, group, ts, borrower, 3000, 50000)
    amount = int(amount * (0.95 + 0.05 * rng.random()))
    ts += world.minutes(1, 15)
    if via_mule:
        mule = accounts[1]
        group.add(ledger.transfer(ts, borrower, mule.account_id, amount))
        ts += world.minutes(1, 15)
        amount = keep_most(world, amount, 0.0, 0.02)
        cash_out(world, ledger, group, ts, mule, amount)
    else:
        cash_out(world, ledger, group, ts, borrower, amount)
    return group


def layering(world: World, ledger: Ledger) -> Group:
    """A loan (5,000-60,000) pushed down a chain of 3-6 p2p hops (up to 8 with `--spread`); each account keeps a
    0.5-3% fee and holds the money 2-30 minutes; the last account cashes out."""
    rng = world.rng
    hops = rng.randint(3, 6 + world.variant.extra_hops)
    accounts = world.reserve(hops + 1, "layering")
    group = new_group("layering", accounts[0].account_id, accounts)
    ts = world.instance_start(5 * 60 * MINUTE)
    amount = _loan(world, ledger, group, ts, accounts[0], 5000, 60000)
    amount = int(amount * (0.97 + 0.03 * rng.random()))
    for src, dst in zip(accounts, accounts[1:]):
        ts += world.minutes(2, 30)
        group.add(ledger.transfer(ts, src, dst.account_id, amount))
        amount = keep_most(world, amount)
    ts += world.minutes(2, 30)
    cash_out(world, ledger, group, ts, accounts[-1], amount)
    return group


def _funnel(world: World, ledger: Ledger, group: Group, ts: int, borrowers: list[Account], collector: Account,
            gap_low: float, gap_high: float, device: str | None = None, ip: str | None = None) -> None:
    """Each borrower takes a loan and forwards most of it to `collector`, who cashes the total out."""
    total = 0
    last = ts
    for borrower in borrowers:
        amount = _loan(world, ledger, group, ts, borrower, 2000, 10000, device, ip)
        sent = int(amount * (0.9 + 0.1 * world.rng.random()))
        when = ts + world.minutes(1, 12)
        group.add(ledger.transfer(when, borrower, collector.account_id, sent, device=device, ip=ip))
        total += sent
        last = max(last, when)
        ts += world.minutes(gap_low, gap_high)
    cash_out(world, ledger, group, last + world.minutes(2, 20), collector, keep_most(world, total, 0.0, 0.01))


def fan_in(world: World, ledger: Ledger) -> Group:
    """5-10 borrowers (each on their own device) take loans 3-20 minutes apart and each sends 90-100% of it
    to one collector within 1-12 minutes; the collector cashes out the sum."""
    count = world.rng.randint(5, 10)
    accounts = world.reserve(count + 1, "fan_in")
    collector, borrowers = accounts[0], accounts[1:]
    group = new_group("fan_in", collector.account_id, accounts)
    ts = world.instance_start(5 * 60 * MINUTE)
    _funnel(world, ledger, group, ts, borrowers, collector, 3, 20)
    return group


def device_burst(world: World, ledger: Ledger) -> Group:
    """5-12 accounts registered together (consecutive ids) on one device and IP borrow 1-6 minutes apart and
    funnel the loans to a collector that cashes out: the mule-farm signature. The key is the shared device."""
    count = world.rng.randint(5, 12)
    device, ip = world.new_device(), world.new_ip()
    borrowers = world.register_batch(count, device, ip)
    collector = world.reserve(1, "device_burst")[0]
    group = new_group("device_burst", device, [collector, *borrowers])
    ts = world.instance_start(4 * 60 * MINUTE)
    _funnel(world, ledger, group, ts, borrowers, collector, 1, 6, device, ip)
    return group


def fan_out(world: World, ledger: Ledger) -> Group:
    """A large loan (20,000-80,000) split within minutes across 5-12 mules (30 s - 3 min apart); 70% of the
    mules cash their share out 5-60 minutes later."""
    rng = world.rng
    count = rng.randint(5, 12)
    accounts = world.reserve(count + 1, "fan_out")
    source, mules = accounts[0], accounts[1:]
    group = new_group("fan_out", source.account_id, accounts)
    ts = world.instance_start(4 * 60 * MINUTE)
    amount = _loan(world, ledger, group, ts, source, 20000, 80000)
    ts += world.minutes(2, 10)
    for mule, share in zip(mules, split(world, int(amount * (0.92 + 0.08 * rng.random())), count)):
        group.add(ledger.transfer(ts, source, mule.account_id, share))
        if rng.random() < 0.7:
            cash_out(world, ledger, group, ts + world.minutes(5, 60), mule, keep_most(world, share, 0.0, 0.02))
        ts += world.minutes(0.5, 3)
    return group


def scatter_gather(world: World, ledger: Ledger) -> Group:
    """A loan (20,000-80,000) scattered to 4-8 intermediaries that each forward it (minus a 0.5-3% fee) to
    one gatherer 5-60 minutes later; the gatherer cashes out."""
    rng = world.rng
    count = rng.randint(4, 8)
    accounts = world.reserve(count + 2, "scatter_gather")
    source, gatherer, middles = accounts[0], accounts[1], accounts[2:]
    group = new_group("scatter_gather", source.account_id, [source, *middles, gatherer])
    ts = world.instance_start(5 * 60 * MINUTE)
    amount = _loan(world, ledger, group, ts, source, 20000, 80000)
    ts += world.minutes(2, 10)
    total = 0
    last = ts
    for middle, share in zip(middles, split(world, int(amount * (0.95 + 0.05 * rng.random())), count)):
        group.add(ledger.transfer(ts, source, middle.account_id, share))
        when = ts + world.minutes(5, 60)
        forwarded = keep_most(world, share)
        group.add(ledger.transfer(when, middle, gatherer.account_id, forwarded))
        total += forwarded
        last = max(last, when)
        ts += world.minutes(0.5, 3)
    cash_out(world, ledger, group, last + world.minutes(2, 20), gatherer, total)
    return group


def gather_scatter(world: World, ledger: Ledger) -> Group:
    """4-8 borrowers send their loans to one hub (3-20 minutes apart); 5-30 minutes after the last arrives
    the hub scatters the pool to 4-8 accounts that cash out."""
    rng = world.rng
    sources_n, sinks_n = rng.randint(4, 8), rng.randint(4, 8)
    accounts = world.reserve(1 + sources_n + sinks_n, "gather_scatter")
    hub, sources, sinks = accounts[0], accounts[1:1 + sources_n], accounts[1 + sources_n:]
    group = new_group("gather_scatter", hub.account_id, accounts)
    ts = world.instance_start(6 * 60 * MINUTE)
    pool = 0
    last = ts
    for source in sources:
        amount = _loan(world, ledger, group, ts, source, 3000, 15000)
        sent = int(amount * (0.9 + 0.1 * rng.random()))
        when = ts + world.minutes(1, 10)
        group.add(ledger.transfer(when, source, hub.account_id, sent))
        pool += sent
        last = max(last, when)
        ts += world.minutes(3, 20)
    ts = last + world.minutes(5, 30)
    for sink, share in zip(sinks, split(world, keep_most(world, pool), sinks_n)):
        group.add(ledger.transfer(ts, hub, sink.account_id, share))
        cash_out(world, ledger, group, ts + world.minutes(3, 40), sink, share)
        ts += world.minutes(0.5, 3)
    return group


def cycle(world: World, ledger: Ledger) -> Group:
    """A loan (5,000-50,000) that goes round 2-6 accounts and comes back to the borrower (2-6 transfers,
    2-40 minutes apart, 0-2% fee a hop): fake turnover that builds a credit history to borrow more."""
    rng = world.rng
    length = rng.randint(2, 6)
    accounts = world.reserve(length, "cycle")
    origin = accounts[0]
    group = new_group("cycle", origin.account_id, accounts)
    ts = world.instance_start(5 * 60 * MINUTE)
    amount = _loan(world, ledger, group, ts, origin, 5000, 50000)
    amount = int(amount * (0.95 + 0.05 * rng.random()))
    ring = [*accounts, origin]
    for src, dst in zip(ring, ring[1:]):
        ts += world.minutes(2, 40)
        group.add(ledger.transfer(ts, src, dst.account_id, amount))
        amount = keep_most(world, amount, 0.0, 0.02)
    return group


def identity_ring(world: World, ledger: Ledger) -> Group:
    """3-8 batch-registered accounts run from 1-3 phones and one or two networks borrow (2,000-15,000 each) over
    2-36 hours, not in a burst. Each forwards 85-100% of its loan 5-90 minutes later to one collector who cashes
    the sum out (60% of rings), or cashes it out itself (the rest; those rings share one network, a proxy).
    Every account shares a device or an IP with another, so they form one linked group."""
    rng = world.rng
    size = rng.randint(3, 8)
    converge = rng.random() < 0.6
    devices = [world.new_device() for _ in range(rng.randint(1, 3))]
    ips = [world.new_ip() for _ in range(rng.randint(1, 2) if converge else 1)]
    borrowers = world.register_linked(size, devices, ips)
    collector = world.open_accounts(1)[0] if converge else None
    key = collector.account_id if collector else f"ip:{ips[0]}"
    group = new_group("identity_ring", key, [collector, *borrowers] if collector else borrowers)
    span = int(world.minutes(120, 36 * 60) / world.variant.pace)     # the ring's own pace, not the variant's
    ts = world.instance_start(span + 3 * 60 * MINUTE)
    total, last = 0, ts
    for n, borrower in enumerate(borrowers):
        when = ts + span * n // max(1, size - 1)
        amount = _loan(world, ledger, group, when, borrower, 2000, 15000)
        when += world.minutes(5, 90)
        moved = int(amount * (0.85 + 0.15 * rng.random()))
        if collector is not None:
            group.add(ledger.transfer(when, borrower, collector.account_id, moved))
            total += moved
        else:
            cash_out(world, ledger, group, when, borrower, moved)
        last = max(last, when)
    if collector is not None:
        cash_out(world, ledger, group, last + world.minutes(5, 60), collector, keep_most(world, total, 0.0, 0.01))
    return group


def account_takeover(world: World, ledger: Ledger) -> Group:
    """An established account (ordinary purchases from its own phone over the 1-2 days before) is taken over:
    a loan (3,000-30,000) is requested from a device and network it never used, and 2-20 minutes later 80-100%
    of it (70% or more with `--spread`) goes p2p to another account in one to three transfers. That account
    spends it slowly: 3-6 purchases over the next one to three days."""
    rng = world.rng
    victim, receiver = world.open_accounts(2)
    group = new_group("account_takeover", victim.account_id, [victim, receiver])
    ts = world.instance_start(4 * 60 * MINUTE, after=int(2.2 * 24 * 60 * MINUTE))
    for _ in range(rng.randint(3, 6)):      # the owner's own history, on the owner's phone: not part of the case
        when = max(world.start, ts - int(world.minutes(25 * 60, 48 * 60) / world.variant.pace))
        mcc = ("5411", "5812", "5541")[int(rng.random() * 3)]
        ledger.transfer(when, victim, world.merchant(mcc), world.amount(15, 300), "merchant", mcc)
    thief_device, thief_ip = world.new_device(), world.new_ip()
    amount = _loan(world, ledger, group, ts, victim, 3000, 30000, thief_device, thief_ip)
    low = world.variant.takeover_share
    moved = int(amount * (low + (1 - low) * rng.random()))
    ts += world.minutes(2, 20)
    for piece in split(world, moved, rng.randint(1, 3)):
        group.add(ledger.transfer(ts, victim, receiver.account_id, piece, device=thief_device, ip=thief_ip))
        ts += world.minutes(1, 10)
    for piece in split(world, int(moved * (0.5 + 0.4 * rng.random())), rng.randint(3, 6), jitter=0.6):
        mcc = LOAN_SPENDING[int(rng.random() * len(LOAN_SPENDING))]
        when = ts + 2 * 60 * MINUTE + int(rng.random() * 3 * 24 * 60 * MINUTE)
        if when < world.end:
            group.add(ledger.transfer(when, receiver, world.merchant(mcc), piece, "merchant", mcc))
    return group


PLANTERS: dict[str, Planter] = {
    "rapid_cashout": rapid_cashout,
    "layering": layering,
    "fan_in": fan_in,
    "fan_out": fan_out,
    "scatter_gather": scatter_gather,
    "gather_scatter": gather_scatter,
    "cycle": cycle,
    "device_burst": device_burst,
    "identity_ring": identity_ring,
    "account_takeover": account_takeover,
}
