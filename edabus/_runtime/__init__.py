"""Actors and their supervisors: activation, mailboxes, handlers, timers, batches, restarts, dead letters."""
