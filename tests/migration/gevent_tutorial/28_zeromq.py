"""ZeroMQ request/reply between two greenlets (needs pyzmq's green sockets)."""

import gevent
import zmq.green as zmq

context = zmq.Context()
server = context.socket(zmq.REP)
port = server.bind_to_random_port("tcp://127.0.0.1")
client = context.socket(zmq.REQ)
client.connect(f"tcp://127.0.0.1:{port}")


def serve():
    for _ in range(2):
        server.send_string(server.recv_string().upper())


def ask():
    for word in ("ping", "pong"):
        client.send_string(word)
        print(client.recv_string())


gevent.joinall([gevent.spawn(serve), gevent.spawn(ask)])

EXPECTED = """\
PING
PONG
"""
