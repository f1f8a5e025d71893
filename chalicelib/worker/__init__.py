"""The worker: runs the action of each scheduled execution once, with a heartbeat, and records the result.

    functions/worker/app.py      the Lambda / poller entry (thin)
    service.py                   claim -> run -> complete for one work message
    slots.py                     at most N actions at once per process
    heartbeat.py                 one beat for all running executions; cancel detection
    packcache.py                 unpacked pack versions, fetched once
    reaper.py                    fails executions whose worker stopped beating
    settings.py                  the ATTUNE_WORKER_* / ATTUNE_ACTION_* knobs

See docs/actions.md ("The worker") for behaviour and settings.
"""
