"""Development tooling: the local broker and ClickHouse stack, worker processes, and the demo."""
