"""The event pipeline: webhook → event → rules → enforcement → execution → worker."""
