"""Consumer domain: messages, seq numbering, cursors. Pure: no I/O, no frameworks."""
