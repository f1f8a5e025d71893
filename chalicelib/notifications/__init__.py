"""Live notifications over WebSocket (docs/notifications.md).

`connections` is what the WebSocket API's routes do ($connect, $disconnect,
subscribe), `delivery` what the notifier does with a `notifications` message,
`triggers` how the rules engine reports `rule.triggered` (coalesced per rule);
`subscriptions`, `coalesce` and `wire` are their pure parts.
"""
