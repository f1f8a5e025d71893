"""Workflows at run time: the handler of `workflow-tasks` messages and the completion callbacks.

The language and its compilation to ASL are pure (`chalicelib.core.workflow`);
this package is where they meet PostgreSQL and Step Functions.
"""
