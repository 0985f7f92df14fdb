"""The edabus command."""
