"""The bus: a Zenoh session, the bridge from its threads to the event loop, and delivery with credit."""
