"""The one error type of the schedule parser, shared by its modules."""


class ScheduleError(ValueError):
    """A schedule string (or its timezone) that cannot be used; the message names the problem."""
