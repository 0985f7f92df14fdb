"""The message model and the wire contract: keys, messages, arrays, envelopes, internal keys and records."""
