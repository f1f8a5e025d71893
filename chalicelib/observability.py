"""Logging set-up shared by the API and every role: Powertools' structured logger."""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger

from chalicelib.config import settings

_configured = False


def configure_logging() -> None:
    """Route the stdlib `attune.*` loggers through one handler at ATTUNE_LOG_LEVEL."""
    global _configured
    if _configured:
        return
    _configured = True
    level = settings().log_level
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def logger(service: str) -> Logger:
    """A Powertools logger for a Lambda entry point (correlation id = execution id)."""
    return Logger(service=service, level=settings().log_level)
