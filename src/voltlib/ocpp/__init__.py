"""Sans-I/O OCPP-J core: text frames in, typed events out. No sockets, no clock reads."""
