"""cffi builder for ``greenpatch.hub._libev``: the libev declarations and the C glue.

Why the glue looks like this
----------------------------
Every crossing of the cffi boundary costs, and a ``extern "Python"`` callback costs
the most (it re-acquires the GIL and builds a Python frame for each ready watcher).
So libev never calls Python here.  Every watcher we start uses one C callback,
``gp_record``, which appends ``(watcher id, revents)`` to a per-loop array.  When
``ev_run`` returns, Python reads that array once (``ffi.unpack``) and dispatches.
One loop iteration therefore costs one crossing into ``gp_run_once`` plus one read,
whatever the number of ready watchers.

Rejected alternatives:

* ``@ffi.def_extern`` callbacks per watcher (what gevent's cffi loop does): simple,
  but 25-40% slower than gevent's Cython loop by gevent's own measurements.
* One libev timer per Python-level sleep: 10,000 sleepers would mean 10,000
  ``ffi.new`` + ``ev_timer_start`` crossings.  The hub keeps a Python heap of
  deadlines instead and arms a single ``wake`` timer here (see ``loop.py``).

Descriptors that are closed under libev
---------------------------------------
libev's epoll backend *aborts the process* (an ``assert`` on ``epoll_ctl``
failing with EBADF) when it registers a descriptor that is no longer open: a
watcher started on a closed descriptor, or the interest of an open watcher
changed after its descriptor was closed behind libev's back.  Python code must
never be able to do that, so io watchers are started and stopped through
``gp_io_start``/``gp_io_stop``, which keep, per descriptor, the list of our
active io watchers and note the descriptors whose interest changed.  Right
before ``ev_run`` (which is when libev calls ``epoll_ctl``), ``gp_check_fds``
looks at those descriptors only, and only when libev is about to register a new
interest for them: if ``fcntl(F_GETFD)`` says EBADF, it stops their watchers and
reports each with ``EV_ERROR``, as libev's poll and select backends do for a bad
descriptor.  In the steady state (a connection waiting for the same direction
again and again) libev's interest does not change and no extra system call is
made.  Rejected: an ``fcntl`` per watcher start (a system call per wait on the
hottest path), and checking in Python (the list of watchers per descriptor is
libev's; only C sees when libev will touch the kernel).

SIGCHLD: ``ev_default_loop`` installs a SIGCHLD handler that reaps *every* child
with ``waitpid(-1)``.  Left alone, that would steal exit statuses from unpatched
``subprocess`` code as soon as the main thread's hub exists.  ``gp_loop_new``
therefore records libev's handler and puts the previous one back; the handler is
installed only while at least one child watcher is active.

Python-level signal handlers: CPython's own C handler stays in charge of a
signal that has a Python handler (it only sets a flag; the interpreter runs the
handler between bytecodes of the main thread).  A hub blocked in
``epoll_wait`` must still return to Python promptly: the kernel interrupts it
(EINTR) when the signal is delivered to the main thread, but not when another
thread takes the signal, nor when the signal lands between the interpreter's
last check and the start of the wait.  ``gp_signal_chain`` therefore puts a
small C handler in front of CPython's: it calls CPython's handler, then sends
an ``ev_async`` that belongs to libev's default loop (static, like that loop,
so a signal never touches freed memory), which makes a blocked or about-to-block
``ev_run`` return.  ``ev_async_send`` is async-signal-safe and keeps ``errno``.
Rejected: ``signal.set_wakeup_fd`` (one process-wide slot that asyncio and
others claim, and Python code could replace ours at any time), and a libev
signal watcher (it replaces CPython's handler: the Python handler would then
run only when the hub runs, never in a main greenlet that polls or spins).

Frame stacks of new greenlets
-----------------------------
On CPython 3.11+ a greenlet's frames live in a data stack of its own, and its
first frame asks CPython's arena allocator for a 16 KiB chunk: an ``mmap``, a
page fault, and a ``munmap`` when the greenlet's last frame returns.  That was
most of what a greenlet cost from its start to its end (8.9 us measured with
10,000 alive at once; 3.8 us from slabs).  ``gp_stack_chunks_install`` (called
when the first hub is made) wraps the arena allocator: requests of exactly
that size are served from 1 MiB slabs (64 chunks, aligned to their size, so a
freed chunk finds its slab by masking its address and a hash lookup),
everything else goes to the allocator that was in place, and so does a 16 KiB
block that no slab holds (mapped before the wrapper, or by someone else).  A
slab whose chunks are all free is unmapped unless two such slabs are kept
already, so a burst of greenlets gives its memory back when it ends.  (A
chunk handed to an allocator that later replaced ours without chaining to it
is never reused: a leak, not a fault.)
Rejected: glibc ``malloc`` for the chunks (telling its blocks from the prior
allocator's needs the same lookup, and its heap keeps the pages of a burst),
and a plain cache of freed chunks (the first burst, where all greenlets live
at once, would still map every chunk).  CPython calls its arena allocator with
the GIL held; a spinlock covers interpreters with a GIL of their own.

"""

from __future__ import annotations

import os
import sys

from cffi import FFI

CDEF = """
struct ev_loop;

#define EV_READ ...
#define EV_WRITE ...
#define EV_TIMER ...
#define EV_SIGNAL ...
#define EV_CHILD ...
#define EV_ASYNC ...
#define EV_PREPARE ...
#define EV_CHECK ...
#define EV_IDLE ...
#define EV_ERROR ...
#define EV_MINPRI ...
#define EV_MAXPRI ...
#define EVFLAG_AUTO ...
#define EVFLAG_NOENV ...
#define EVFLAG_NOSIGMASK ...
#define EVBACKEND_SELECT ...
#define EVBACKEND_POLL ...
#define EVBACKEND_EPOLL ...
#define EVBACKEND_KQUEUE ...
#define EVBACKEND_PORT ...
#define EVBACKEND_LINUXAIO ...
#define EVBACKEND_IOURING ...

typedef struct { int fd; int events; ...; } ev_io;
typedef struct { ev_io io; ...; } gp_io;
typedef struct { double repeat; ...; } ev_timer;
typedef struct { int signum; ...; } ev_signal;
typedef struct { int pid; int rpid; int rstatus; ...; } ev_child;
typedef struct { ...; } ev_async;
typedef struct { ...; } ev_prepare;
typedef struct { ...; } ev_check;
typedef struct { ...; } ev_idle;

int ev_version_major(void);
int ev_version_minor(void);
unsigned int ev_supported_backends(void);
unsigned int ev_recommended_backends(void);
unsigned int ev_backend(struct ev_loop *);
double ev_now(struct ev_loop *);
void ev_now_update(struct ev_loop *);
void ev_break(struct ev_loop *, int);
void ev_ref(struct ev_loop *);
void ev_unref(struct ev_loop *);
void ev_loop_fork(struct ev_loop *);
unsigned int ev_iteration(struct ev_loop *);
unsigned int ev_pending_count(struct ev_loop *);
void ev_verify(struct ev_loop *);

void ev_timer_start(struct ev_loop *, ev_timer *);
void ev_timer_stop(struct ev_loop *, ev_timer *);
void ev_timer_again(struct ev_loop *, ev_timer *);
double ev_timer_remaining(struct ev_loop *, ev_timer *);
void ev_signal_start(struct ev_loop *, ev_signal *);
void ev_signal_stop(struct ev_loop *, ev_signal *);
void ev_child_start(struct ev_loop *, ev_child *);
void ev_child_stop(struct ev_loop *, ev_child *);
void ev_async_start(struct ev_loop *, ev_async *);
void ev_async_stop(struct ev_loop *, ev_async *);
void ev_async_send(struct ev_loop *, ev_async *);
void ev_prepare_start(struct ev_loop *, ev_prepare *);
void ev_prepare_stop(struct ev_loop *, ev_prepare *);
void ev_check_start(struct ev_loop *, ev_check *);
void ev_check_stop(struct ev_loop *, ev_check *);
void ev_idle_start(struct ev_loop *, ev_idle *);
void ev_idle_stop(struct ev_loop *, ev_idle *);

typedef struct gp_loop {
    struct ev_loop *loop;
    int is_default;
    int npending;
    long *ids;
    int *revents;
    ...;
} gp_loop;

gp_loop *gp_loop_new(int use_default, unsigned int flags);
void gp_loop_free(gp_loop *g);
int gp_run_once(gp_loop *g, double timeout, int wake_ref, int pause_us);
void gp_wake(gp_loop *g);

int gp_io_start(struct ev_loop *loop, gp_io *w);
void gp_io_stop(struct ev_loop *loop, gp_io *w);
void gp_loop_forked(gp_loop *g);
int gp_fd_watchers(gp_loop *g, int fd, long *ids, int capacity);
void gp_io_init(gp_io *w, int fd, int events);
void gp_timer_init(ev_timer *w, double after, double repeat);
void gp_signal_init(ev_signal *w, int signum);
void gp_child_init(ev_child *w, int pid, int trace);
void gp_async_init(ev_async *w);
void gp_prepare_init(ev_prepare *w);
void gp_check_init(ev_check *w);
void gp_idle_init(ev_idle *w);

void gp_set_id(void *w, long id);
int gp_is_active(void *w);
int gp_is_pending(void *w);
int gp_priority(void *w);
void gp_set_priority(void *w, int priority);
void gp_io_set(gp_io *w, int fd, int events);
void gp_timer_set(ev_timer *w, double after, double repeat);
int gp_async_pending(ev_async *w);

int gp_sigchld_acquire(void);
void gp_sigchld_release(void);
void gp_signal_stop_keeping_disposition(struct ev_loop *loop, ev_signal *w);
int gp_signal_chain(int signum);
void gp_signal_wake(void);

int gp_stack_chunks_install(void);
void gp_stack_chunks_stats(long *slabs, long *chunks);
"""

# The C glue lives in its own file (read at build time; cffi runs this script
# with ``__file__`` set): C is read and reviewed as C, and this script stays the
# build's description.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "_libev_glue.c")) as _glue:
    C_SOURCE = _glue.read()

MISSING_HEADERS = (
    "greenpatch: libev headers (ev.h) not found; install them first: "
    "Debian/Ubuntu 'apt-get install libev-dev', Fedora 'dnf install libev-devel', "
    "macOS 'brew install libev'."
)


def _include_dirs() -> list[str]:
    dirs = []
    for prefix in (os.environ.get("LIBEV_PREFIX"), "/usr/local", "/opt/homebrew", "/usr"):
        if prefix:
            include = os.path.join(prefix, "include")
            dirs.append(include)
            # Fedora puts the header under include/libev/.
            if os.path.isdir(os.path.join(include, "libev")):
                dirs.append(os.path.join(include, "libev"))
    return dirs


def _check_headers() -> None:
    candidates = [os.path.join(d, "ev.h") for d in _include_dirs()]
    if not any(os.path.exists(c) for c in candidates):
        # One line, as setup tools print the message as the error.
        sys.exit(MISSING_HEADERS)


def _library_dirs() -> list[str]:
    return [os.path.join(os.path.dirname(d), "lib") for d in _include_dirs()]


ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "greenpatch.hub._libev",
    C_SOURCE,
    libraries=["ev"],
    include_dirs=_include_dirs(),
    library_dirs=_library_dirs(),
)

if os.environ.get("GREENPATCH_SKIP_HEADER_CHECK") != "1":
    _check_headers()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
