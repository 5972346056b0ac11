"""A chat room: Flask on pywsgi, one queue per user, long-polling clients."""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import urllib.request  # noqa: E402

import gevent  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402
from gevent import queue  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402


class Room:
    def __init__(self):
        self.users = set()
        self.messages = []

    def subscribe(self, user):
        self.users.add(user)

    def add(self, message):
        self.messages.append(message)
        for user in self.users:
            user.queue.put_nowait(message)


class User:
    def __init__(self):
        self.queue = queue.Queue()


room = Room()
users = {}
app = Flask(__name__)


@app.route("/join/<uid>", methods=["POST"])
def join(uid):
    users[uid] = User()
    room.subscribe(users[uid])
    return jsonify(ok=True)


@app.route("/put", methods=["POST"])
def put():
    room.add(request.get_data(as_text=True))
    return jsonify(ok=True)


@app.route("/poll/<uid>")
def poll(uid):
    try:
        message = users[uid].queue.get(timeout=2)
    except queue.Empty:
        message = None
    return jsonify(message=message)


server = WSGIServer(("127.0.0.1", 0), app, log=None)
server.start()
base = f"http://127.0.0.1:{server.server_port}"


def call(path, data=None):
    with urllib.request.urlopen(urllib.request.Request(base + path, data=data)) as response:
        return json.loads(response.read())


for uid in ("ann", "bob"):
    call(f"/join/{uid}", data=b"")
pollers = {uid: gevent.spawn(call, f"/poll/{uid}") for uid in ("ann", "bob")}
gevent.sleep(0.01)
call("/put", data=b"hello room")
for uid, poller in pollers.items():
    print(uid, "got", poller.get()["message"])
print("history:", room.messages)
server.stop()

EXPECTED = """\
ann got hello room
bob got hello room
history: ['hello room']
"""
