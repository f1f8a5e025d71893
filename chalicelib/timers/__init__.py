"""Timers: the ticker claims fires and sends them as delayed messages; the fire handler emits events.

`ticker.tick` runs once a minute (EventBridge Scheduler); `ticker.schedule_now`
gives a timer its first fires the moment it becomes live; `fire.handle_record`
turns one delivered fire into one event, exactly once.
"""
