"""The domain types every layer shares: events and their contract, warnings, money, time formats."""
