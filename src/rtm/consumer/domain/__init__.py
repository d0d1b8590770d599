"""Consumer domain: messages, delivery order, cursors. Pure: no I/O, no frameworks."""
