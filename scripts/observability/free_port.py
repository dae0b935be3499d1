"""Prints a TCP port free on 127.0.0.1 now (the kernel's pick), for a server to listen on."""

import socket

s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
