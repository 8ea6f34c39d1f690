"""The console logger of every run: Dagster's colored console logger, with each error's stack
trace printed once (on the failed step), not again in the run's failure line."""

from __future__ import annotations

import logging

from dagster import DagsterEventType, Field, InitLoggerContext, logger
from dagster._core.log_manager import LOG_RECORD_METADATA_ATTR
from dagster._utils.log import create_console_logger

_ERROR_SEPARATOR = "\n\n"


class RunFailureWithoutTrace(logging.Filter):
    """Cut the error (message and stack trace) off RUN_FAILURE lines: the failed step's own
    line has printed it already."""

    def filter(self, record: logging.LogRecord) -> bool:
        meta = getattr(record, LOG_RECORD_METADATA_ATTR, None) or {}
        event = meta.get("dagster_event") if isinstance(meta, dict) else None
        if event is not None and event.event_type == DagsterEventType.RUN_FAILURE:
            message = record.getMessage()
            record.msg, record.args = message.split(_ERROR_SEPARATOR, 1)[0], None
        return True


@logger(
    {
        "log_level": Field(str, is_required=False, default_value="INFO"),
        "name": Field(str, is_required=False, default_value="dagster"),
    },
    description="Dagster's colored console logger; a run's failure line names the failed steps "
    "without repeating their stack traces.",
)
def console_logger(init_context: InitLoggerContext) -> logging.Logger:
    log = create_console_logger(
        name=init_context.logger_config["name"], level=init_context.logger_config["log_level"]
    )
    for handler in log.handlers:
        handler.addFilter(RunFailureWithoutTrace())
    return log
