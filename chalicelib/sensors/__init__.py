"""Polling sensors: a pack's `sensors/<name>.yaml` and the Python class whose `poll(state)` finds events.

- `registry`: registering a pack creates each sensor, its trigger and its schedule;
- `timing`: the schedule's expression, and how an AWS minute spreads sub-minute polls (pure);
- `runner` + `wrapper`: one poll in its own sandboxed process, with a timeout;
- `service`: what the sensor function does when a schedule fires or a delayed poll arrives.

docs/sensors.md is the user's side of it.
"""
