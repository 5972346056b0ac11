"""Monkey patching swaps stdlib objects for cooperative ones."""

import select
import socket

from gevent import monkey

plain_socket = socket.socket
plain_select = select.select
print("socket patched before:", monkey.is_module_patched("socket"))
monkey.patch_socket()
print("socket.socket replaced:", socket.socket is not plain_socket)
print("socket patched after:", monkey.is_module_patched("socket"))
monkey.patch_select()
print("select.select replaced:", select.select is not plain_select)
print("original kept:", monkey.get_original("socket", "socket") is plain_socket)
print("originals as a list:", monkey.get_original("select", ["select"]) == [plain_select])

EXPECTED = """\
socket patched before: False
socket.socket replaced: True
socket patched after: True
select.select replaced: True
original kept: True
originals as a list: True
"""
