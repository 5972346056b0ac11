"""The divide-and-conquer pipeline: a ventilator, 10 workers, a sink, patched.

    python docs/examples/zmq_push_pull.py

The ventilator PUSHes 40 tasks of 50 ms each to 10 worker threads, which PUSH
their results to a sink.  One after another the tasks would take 2 s; with the
workers' waits (``recv`` and the task's own ``time.sleep``) on the hub they
overlap, and a ticker keeps ticking.
"""

from __future__ import annotations

import greenpatch

greenpatch.patch_all()

import threading  # noqa: E402
import time  # noqa: E402

import zmq  # noqa: E402

TASKS = 40
WORKERS = 10
TASK_TIME = 0.05


def work(context: zmq.Context, tasks_address: str, results_address: str) -> None:
    tasks = context.socket(zmq.PULL)
    tasks.connect(tasks_address)
    results = context.socket(zmq.PUSH)
    results.connect(results_address)
    done = 0
    while True:
        task = tasks.recv()
        if task == b"stop":
            break
        time.sleep(TASK_TIME)  # the "work"
        results.send(task)
        done += 1
    results.send(b"worker did %d" % done)
    tasks.close()
    results.close()


def main() -> None:
    context = zmq.Context()
    ventilator = context.socket(zmq.PUSH)
    ventilator.bind("tcp://127.0.0.1:*")
    sink = context.socket(zmq.PULL)
    sink.bind("tcp://127.0.0.1:*")
    tasks_address = ventilator.getsockopt_string(zmq.LAST_ENDPOINT)
    results_address = sink.getsockopt_string(zmq.LAST_ENDPOINT)
    workers = [
        threading.Thread(target=work, args=(context, tasks_address, results_address))
        for _ in range(WORKERS)
    ]
    for thread in workers:
        thread.start()
    time.sleep(0.2)  # let every worker connect: PUSH deals only to connected peers

    ticks = 0
    done = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.01)

    ticker = threading.Thread(target=tick)
    ticker.start()
    started = time.perf_counter()
    for number in range(TASKS):
        ventilator.send(b"task %d" % number)
    results = [sink.recv() for _ in range(TASKS)]
    elapsed = time.perf_counter() - started
    for _ in workers:
        ventilator.send(b"stop")
    shares = sorted(int(sink.recv().split()[-1]) for _ in workers)
    for thread in workers:
        thread.join()
    done.set()
    ticker.join()
    print(f"{len(results)} results from {WORKERS} workers (tasks per worker: {shares})")
    print(f"one after another: {TASKS * TASK_TIME:.1f} s; pipelined: {elapsed:.2f} s")
    print(f"the ticker ticked {ticks} times meanwhile")
    ventilator.close()
    sink.close()
    context.term()


if __name__ == "__main__":
    main()
