"""The worker: runs the action of each scheduled execution once, with a heartbeat, and records the result.

    functions/worker/app.py      the Lambda / poller entry (thin)
    service.py                   claim -> run -> complete for one work message
    slots.py                     at most N actions at once per process
    heartbeat.py                 one beat for all running executions; cancel detection
    packcache.py                 unpacked pack versions, fetched once

Status changes go through chalicelib/executions (the lifecycle); settings live in
chalicelib/config.py. See docs/actions.md ("The worker") for behaviour and settings.
"""
