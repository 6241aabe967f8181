"""Ordinary life on a consumer-credit ledger: the background the planted patterns hide in.

Per day, `background_per_day` events are drawn from this mix (shares of draws):
- 61% card-present spending at everyday merchants (groceries 5411, restaurants 5812, fast food 5814, fuel
  5541, transit 4111, pharmacy 5912, clothing 5651, department stores 5311, utilities 4900, electronics 5732,
  furniture 5712, travel 4722, education 8299), amounts log-uniform in each category's range;
- 25% p2p transfers to a friend in the payer's community (6-20 accounts), mostly whole units;
- 8% withdrawals to the account's own bank card, whole hundreds;
- 3% small money-transfer / stored-value top-ups (MCC 4829 / 6540) of 20-500 units;
- 3% of draws open a benign loan: a disbursement (credit_line / installment / cash_loan, 1,000-30,000 units)
  followed by 2-7 purchases at big-ticket categories spread over 2 hours to 10 days, spending 50-100% of it,
  and in one loan of five a withdrawal of part of it one to five days later.
Times of day follow a day/evening-heavy curve. Loan follow-ups that would fall after the end are dropped.
"""

from __future__ import annotations

from .world import (BENIGN_CASH_LIKE, DAY, HOUR, LOAN_PRODUCTS, LOAN_SPENDING, SPENDING, TRANSFER, Ledger, World,
                    split)

_P_MERCHANT = 0.61
_P_P2P = _P_MERCHANT + 0.25
_P_WITHDRAWAL = _P_P2P + 0.08
_P_TOPUP = _P_WITHDRAWAL + 0.03      # the remaining 3% of draws open a benign loan


def generate_background(world: World, ledger: Ledger) -> None:
    rng = world.rng
    rand = rng.random
    accounts = world.accounts
    n_accounts = len(accounts)
    communities = world.communities
    records = ledger.records
    hour_table = world.hour_table
    n_hours = len(hour_table)
    # One flat table of spending categories, so a draw is one index instead of a weighted choice.
    category_table = []
    for mcc, weight, low, high in SPENDING:
        category_table.extend([(mcc, world.merchants[mcc], low, high / low)] * weight)
    n_categories = len(category_table)
    per_day = world.params.background_per_day
    for day in range(world.params.days):
        day_start = world.start + day * DAY
        produced = 0
        while produced < per_day:
            ts = day_start + hour_table[int(rand() * n_hours)] * HOUR + int(rand() * HOUR)
            account = accounts[int(rand() * n_accounts)]
            draw = rand()
            if draw < _P_MERCHANT:
                mcc, shops, low, ratio = category_table[int(rand() * n_categories)]
                seq = ledger.next_seq
                ledger.next_seq = seq + 1
                records.append((ts, seq, TRANSFER, account.account_id, shops[int(rand() * len(shops))],
                                max(1, int(low * ratio ** rand() * 100)), "merchant", mcc, account.device,
                                account.ip))
            elif draw < _P_P2P:
                friends = communities[account.community]
                friend = friends[int(rand() * len(friends))]
                if friend is account:
                    continue
                units = 10 * 200 ** rand()
                amount = int(units) * 100 if rand() < 0.6 else int(units * 100)
                seq = ledger.next_seq
                ledger.next_seq = seq + 1
                records.append((ts, seq, TRANSFER, account.account_id, friend.account_id, max(100, amount), "p2p",
                                None, account.device, account.ip))
            elif draw < _P_WITHDRAWAL:
                seq = ledger.next_seq
                ledger.next_seq = seq + 1
                records.append((ts, seq, TRANSFER, account.account_id, account.card,
                                int(1 + 30 * rand()) * 10000, "withdrawal", None, account.device, account.ip))
            elif draw < _P_TOPUP:
                mcc = BENIGN_CASH_LIKE[int(rand() * 2)]
                ledger.transfer(ts, account, world.merchant(mcc), world.amount(20, 500, whole=True),
                                "merchant", mcc)
            else:
                produced += _benign_loan(world, ledger, ts, account)
                continue
            produced += 1


def _benign_loan(world: World, ledger: Ledger, ts: int, account) -> int:
    """A loan used the way loans are meant to be used: bought things over the following days."""
    rng = world.rng
    amount = world.amount(1000, 30000, whole=True)
    ledger.disburse(ts, account, amount, LOAN_PRODUCTS[int(rng.random() * 3)])
    made = 1
    purchases = rng.randint(2, 7)
    spent = int(amount * (0.5 + 0.5 * rng.random()))
    for piece in split(world, spent, purchases, jitter=0.6):
        when = ts + 2 * HOUR + int(rng.random() * 10 * DAY)
        if when >= world.end:
            continue
        mcc = LOAN_SPENDING[int(rng.random() * len(LOAN_SPENDING))]
        ledger.transfer(when, account, world.merchant(mcc), piece, "merchant", mcc)
        made += 1
    if rng.random() < 0.2:
        when = ts + DAY + int(rng.random() * 4 * DAY)
        if when < world.end:
            ledger.transfer(when, account, account.card, max(100, (amount - spent) // 10000 * 10000 or 10000),
                            "withdrawal")
            made += 1
    return made
