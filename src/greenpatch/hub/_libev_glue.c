/* The C glue of greenpatch.hub._libev, compiled by cffi (see _libev_build.py,
   whose docstring explains the design of each part). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <time.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <ev.h>

/* An io watcher with its links in the per-descriptor list of its loop (see
   "Descriptors that are closed under libev" in _libev_build.py).  The ev_io
   comes first: a gp_io * is also an ev_io * and an ev_watcher *. */
typedef struct gp_io {
    ev_io io;
    struct gp_io *fd_next;
    struct gp_io *fd_prev;
    int linked;
} gp_io;

typedef struct {
    gp_io *head;          /* our active io watchers on this descriptor */
    int mask;             /* their interest when libev last looked (ev_run) */
    int touched;          /* listed in gp_loop.touched */
} gp_fd;

typedef struct gp_loop {
    struct ev_loop *loop;
    int is_default;
    int npending;
    int capacity;
    long *ids;
    int *revents;
    ev_timer wake;        /* armed for the Python timer heap's next deadline */
    int wake_unref;       /* the wake timer is armed without counting as alive */
    ev_async threadsafe;  /* woken by run_callback_threadsafe */
    gp_fd *fds;           /* indexed by descriptor, nfds entries */
    int nfds;
    int *touched;         /* descriptors whose watchers changed since the last run */
    int ntouched;
    int touched_capacity;
    int backend_fd;       /* libev's epoll descriptor when known, else -1 */
} gp_loop;

/* Records a ready watcher; Python dispatches after ev_run returns. */
static void gp_record(struct ev_loop *loop, ev_watcher *w, int revents)
{
    gp_loop *g = (gp_loop *)ev_userdata(loop);
    if (g->npending == g->capacity) {
        int capacity = g->capacity * 2;
        long *ids = (long *)realloc(g->ids, sizeof(long) * capacity);
        int *revs;
        if (ids == NULL)
            abort();  /* out of memory while the loop runs: nothing sane to do */
        g->ids = ids;
        revs = (int *)realloc(g->revents, sizeof(int) * capacity);
        if (revs == NULL)
            abort();
        g->revents = revs;
        g->capacity = capacity;
    }
    g->ids[g->npending] = (long)(intptr_t)w->data;
    g->revents[g->npending] = revents;
    g->npending++;
}

static void gp_nothing(struct ev_loop *loop, ev_watcher *w, int revents)
{
    (void)loop; (void)w; (void)revents;
}

/* The wake timer fired (libev stopped it): give back the reference we took
   away when it was armed unreferenced, as libev requires for such watchers. */
static void gp_wake_fired(struct ev_loop *loop, ev_timer *w, int revents)
{
    gp_loop *g = (gp_loop *)ev_userdata(loop);
    (void)w; (void)revents;
    if (g != NULL && g->wake_unref) {
        ev_ref(loop);
        g->wake_unref = 0;
    }
}

/* SIGCHLD bookkeeping, see the module docstring of _libev_build.py. */
static struct sigaction gp_libev_sigchld;
static struct sigaction gp_prior_sigchld;
static int gp_sigchld_known = 0;
static int gp_sigchld_users = 0;

/* libev does not tell its backend's descriptor, and registering that very
   descriptor with epoll is one of the mistakes libev aborts on (EINVAL), so a
   stale descriptor number that a new loop reused must be refused like a
   closed one.  A new descriptor takes the lowest free number: note it before
   libev creates its epoll set and check afterwards that it is an epoll set.
   (Another thread creating descriptors at the same instant could defeat the
   guess; the check then finds no epoll set there and nothing is refused.) */
static int gp_lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        close(fd);
    return fd;
}

static int gp_is_epoll_fd(int fd)
{
#ifdef __linux__
    struct epoll_event event;
    return fd >= 0 && epoll_wait(fd, &event, 1, 0) >= 0;
#else
    (void)fd;
    return 0;
#endif
}

static int gp_default_backend_fd = -1;

/* Python-level signals wake the default loop through this async watcher (see
   "Python-level signal handlers" in the module docstring).  Static, as libev's
   default loop is: a signal handler may run in any thread at any time, so what
   it touches must never be freed. */
static ev_async gp_signal_async;
static struct ev_loop *volatile gp_signal_loop = NULL;
/* signum -> the handler we call first (CPython's), 0 when none. */
static void (*volatile gp_chained[NSIG])(int);

gp_loop *gp_loop_new(int use_default, unsigned int flags)
{
    gp_loop *g = (gp_loop *)calloc(1, sizeof(gp_loop));
    int guess = gp_lowest_free_fd();
    if (g == NULL)
        return NULL;
    g->backend_fd = -1;
    g->capacity = 64;
    g->ids = (long *)malloc(sizeof(long) * g->capacity);
    g->revents = (int *)malloc(sizeof(int) * g->capacity);
    if (g->ids == NULL || g->revents == NULL) {
        free(g->ids); free(g->revents); free(g);
        return NULL;
    }
    if (use_default) {
        struct sigaction before;
        sigaction(SIGCHLD, NULL, &before);
        g->loop = ev_default_loop(flags);
        if (g->loop != NULL && !gp_sigchld_known) {
            sigaction(SIGCHLD, NULL, &gp_libev_sigchld);
            gp_prior_sigchld = before;
            gp_sigchld_known = 1;
            if (gp_sigchld_users == 0)
                sigaction(SIGCHLD, &gp_prior_sigchld, NULL);
        }
        g->is_default = 1;
    } else {
        g->loop = ev_loop_new(flags);
    }
    if (g->loop == NULL) {
        free(g->ids); free(g->revents); free(g);
        return NULL;
    }
    if (use_default && gp_default_backend_fd >= 0)
        g->backend_fd = gp_default_backend_fd;  /* the default loop was made before */
    else if ((ev_backend(g->loop) & EVBACKEND_EPOLL) && gp_is_epoll_fd(guess))
        g->backend_fd = guess;
    if (use_default)
        gp_default_backend_fd = g->backend_fd;
    if (use_default && gp_signal_loop == NULL) {
        /* Started once for the life of the process (a later Loop over the
           default loop finds it active), and unreferenced: a wake-up channel
           is no work to wait for. */
        ev_async_init(&gp_signal_async, gp_nothing);
        ev_async_start(g->loop, &gp_signal_async);
        ev_unref(g->loop);
        gp_signal_loop = g->loop;
    }
    ev_set_userdata(g->loop, g);
    ev_init(&g->wake, gp_wake_fired);
    ev_init(&g->threadsafe, gp_nothing);
    ev_async_start(g->loop, &g->threadsafe);
    ev_unref(g->loop);  /* the wake-up channel alone must not keep the loop alive */
    return g;
}

void gp_loop_free(gp_loop *g)
{
    int fd;
    gp_io *w;
    /* Unlink what is still linked: the watchers may outlive the loop (the
       Python objects hold them) and must not point into freed lists. */
    for (fd = 0; fd < g->nfds; fd++) {
        while ((w = g->fds[fd].head) != NULL) {
            g->fds[fd].head = w->fd_next;
            w->fd_next = w->fd_prev = NULL;
            w->linked = 0;
        }
    }
    free(g->fds);
    free(g->touched);
    ev_timer_stop(g->loop, &g->wake);
    ev_ref(g->loop);
    ev_async_stop(g->loop, &g->threadsafe);
    ev_set_userdata(g->loop, NULL);
    if (!g->is_default)
        ev_loop_destroy(g->loop);
    free(g->ids);
    free(g->revents);
    free(g);
}

/* -- io watchers and the descriptors under them ----------------------------- */

static int gp_touch(gp_loop *g, int fd)
{
    if (g->fds[fd].touched)
        return 0;
    if (g->ntouched == g->touched_capacity) {
        int capacity = g->touched_capacity ? g->touched_capacity * 2 : 64;
        int *touched = (int *)realloc(g->touched, sizeof(int) * capacity);
        if (touched == NULL)
            return -1;
        g->touched = touched;
        g->touched_capacity = capacity;
    }
    g->touched[g->ntouched++] = fd;
    g->fds[fd].touched = 1;
    return 0;
}

static int gp_reserve_fd(gp_loop *g, int fd)
{
    if (fd >= g->nfds) {
        int nfds = g->nfds ? g->nfds : 64;
        gp_fd *fds;
        while (nfds <= fd)
            nfds *= 2;
        fds = (gp_fd *)realloc(g->fds, sizeof(gp_fd) * nfds);
        if (fds == NULL)
            return -1;
        memset(fds + g->nfds, 0, sizeof(gp_fd) * (nfds - g->nfds));
        g->fds = fds;
        g->nfds = nfds;
    }
    return 0;
}

static void gp_unlink(gp_loop *g, gp_io *w)
{
    if (!w->linked)
        return;
    if (w->fd_prev != NULL)
        w->fd_prev->fd_next = w->fd_next;
    else
        g->fds[w->io.fd].head = w->fd_next;
    if (w->fd_next != NULL)
        w->fd_next->fd_prev = w->fd_prev;
    w->fd_next = w->fd_prev = NULL;
    w->linked = 0;
}

/* Returns -1 (errno ENOMEM) when the bookkeeping could not grow; the watcher
   is then not started. */
int gp_io_start(struct ev_loop *loop, gp_io *w)
{
    gp_loop *g = (gp_loop *)ev_userdata(loop);
    int fd = w->io.fd;
    if (gp_reserve_fd(g, fd) < 0 || gp_touch(g, fd) < 0) {
        errno = ENOMEM;
        return -1;
    }
    if (!w->linked) {
        w->fd_prev = NULL;
        w->fd_next = g->fds[fd].head;
        if (w->fd_next != NULL)
            w->fd_next->fd_prev = w;
        g->fds[fd].head = w;
        w->linked = 1;
    }
    ev_io_start(loop, &w->io);
    return 0;
}

void gp_io_stop(struct ev_loop *loop, gp_io *w)
{
    gp_loop *g = (gp_loop *)ev_userdata(loop);
    ev_io_stop(loop, &w->io);
    if (g != NULL && w->linked) {
        gp_unlink(g, w);
        /* Out of memory here only costs the check of this descriptor; a stop
           can leave libev's interest at nothing (no epoll_ctl) or smaller,
           which the next start or check of the descriptor looks at again. */
        gp_touch(g, w->io.fd);
    }
}

/* Before ev_run: stop, with EV_ERROR, the watchers of every descriptor that
   libev would register anew although it is closed. */
static void gp_check_fds(gp_loop *g)
{
    int i;
    for (i = 0; i < g->ntouched; i++) {
        int fd = g->touched[i];
        gp_fd *info = &g->fds[fd];
        gp_io *w;
        int mask = 0;
        info->touched = 0;
        for (w = info->head; w != NULL; w = w->fd_next)
            mask |= w->io.events & (EV_READ | EV_WRITE);
        if (mask && mask != info->mask
                && (fd == g->backend_fd || (fcntl(fd, F_GETFD) == -1 && errno == EBADF))) {
            while ((w = info->head) != NULL) {
                gp_unlink(g, w);
                ev_io_stop(g->loop, &w->io);
                gp_record(g->loop, (ev_watcher *)w, EV_ERROR | w->io.events);
            }
            mask = 0;
        }
        info->mask = mask;
    }
    g->ntouched = 0;
}

/* The ids of our active io watchers on fd (at most capacity of them); returns
   how many there are in all. */
int gp_fd_watchers(gp_loop *g, int fd, long *ids, int capacity)
{
    gp_io *w;
    int count = 0;
    if (fd < 0 || fd >= g->nfds)
        return 0;
    for (w = g->fds[fd].head; w != NULL; w = w->fd_next) {
        if (count < capacity)
            ids[count] = (long)(intptr_t)w->io.data;
        count++;
    }
    return count;
}

/* After ev_loop_fork: libev registers every descriptor again, so every one
   with a watcher must be looked at again. */
void gp_loop_forked(gp_loop *g)
{
    int fd;
    /* libev makes a new epoll set in the child, at a number we cannot know. */
    g->backend_fd = -1;
    if (g->is_default)
        gp_default_backend_fd = -1;
    for (fd = 0; fd < g->nfds; fd++) {
        g->fds[fd].mask = 0;
        if (g->fds[fd].head != NULL)
            gp_touch(g, fd);
    }
}

/* One iteration.  timeout < 0: block until something happens; 0: poll only;
   > 0: block at most that long (the Python timer heap's next deadline).
   wake_ref: whether that deadline is itself a reason to stay alive; when it is
   not (only unreferenced Python timers are pending), the wake timer is armed
   unreferenced, so with nothing else active ev_run returns at once, not alive.
   pause_us: after a poll that did not block, stay out of Python (the GIL is
   released around this call) that many microseconds: see "GIL hand-off" in
   loop.py.
   Returns ev_run's active count, never counting the wake timer. */
int gp_run_once(gp_loop *g, double timeout, int wake_ref, int pause_us)
{
    int alive;
    if (g->ntouched)
        gp_check_fds(g);
    /* Watchers failed by the check are already recorded: they must be
       dispatched now, not after a wait for something else. */
    if (timeout == 0.0 || g->npending) {
        alive = ev_run(g->loop, EVRUN_NOWAIT);
        if (pause_us > 0) {
            struct timespec pause;
            pause.tv_sec = 0;
            pause.tv_nsec = (long)pause_us * 1000L;
            nanosleep(&pause, NULL);
        }
        return alive;
    }
    if (timeout > 0.0) {
        ev_timer_set(&g->wake, timeout, 0.0);
        ev_timer_start(g->loop, &g->wake);
        if (!wake_ref) {
            ev_unref(g->loop);
            g->wake_unref = 1;
        }
    }
    alive = ev_run(g->loop, EVRUN_ONCE);
    if (ev_is_active(&g->wake)) {
        if (g->wake_unref) {
            ev_ref(g->loop);
            g->wake_unref = 0;
        } else {
            alive--;
        }
        ev_timer_stop(g->loop, &g->wake);
    }
    return alive;
}

void gp_wake(gp_loop *g)
{
    ev_async_send(g->loop, &g->threadsafe);
}

void gp_io_init(gp_io *w, int fd, int events)
{
    ev_io_init(&w->io, (void *)gp_record, fd, events);
    w->fd_next = w->fd_prev = NULL;
    w->linked = 0;
}
void gp_timer_init(ev_timer *w, double after, double repeat)
{
    ev_timer_init(w, (void *)gp_record, after, repeat);
}
void gp_signal_init(ev_signal *w, int signum) { ev_signal_init(w, (void *)gp_record, signum); }
void gp_child_init(ev_child *w, int pid, int trace)
{
    ev_child_init(w, (void *)gp_record, pid, trace);
}
void gp_async_init(ev_async *w) { ev_async_init(w, (void *)gp_record); }
void gp_prepare_init(ev_prepare *w) { ev_prepare_init(w, (void *)gp_record); }
void gp_check_init(ev_check *w) { ev_check_init(w, (void *)gp_record); }
void gp_idle_init(ev_idle *w) { ev_idle_init(w, (void *)gp_record); }

void gp_set_id(void *w, long id) { ((ev_watcher *)w)->data = (void *)(intptr_t)id; }
int gp_is_active(void *w) { return ev_is_active((ev_watcher *)w); }
int gp_is_pending(void *w) { return ev_is_pending((ev_watcher *)w); }
int gp_priority(void *w) { return ev_priority((ev_watcher *)w); }
void gp_set_priority(void *w, int priority) { ev_set_priority((ev_watcher *)w, priority); }
void gp_io_set(gp_io *w, int fd, int events) { ev_io_set(&w->io, fd, events); }
void gp_timer_set(ev_timer *w, double after, double repeat) { ev_timer_set(w, after, repeat); }
int gp_async_pending(ev_async *w) { return ev_async_pending(w); }

/* Returns 0 when the default loop was never created (no handler to install). */
int gp_sigchld_acquire(void)
{
    if (!gp_sigchld_known)
        return 0;
    if (gp_sigchld_users++ == 0) {
        /* Restore later whatever is in force now (it may have been set after
           the default loop was created). */
        sigaction(SIGCHLD, &gp_libev_sigchld, &gp_prior_sigchld);
        /* A child may have exited while no handler was installed: its SIGCHLD
           is gone, so make libev look for exited children now. */
        ev_feed_signal(SIGCHLD);
    }
    return 1;
}

void gp_sigchld_release(void)
{
    if (gp_sigchld_users > 0 && --gp_sigchld_users == 0)
        sigaction(SIGCHLD, &gp_prior_sigchld, NULL);
}

/* ev_signal_stop of a signal's last watcher resets it to SIG_DFL, which for
   SIGUSR1 or SIGTERM ends the process if one arrives before anyone installs a
   handler again.  Stop, then put back at once whatever was in effect before:
   the gap shrinks from a round trip through Python to one system call.  The
   caller installs the handler it wants first (libev's is no use once its
   last watcher is gone: it drops the signal). */
void gp_signal_stop_keeping_disposition(struct ev_loop *loop, ev_signal *w)
{
    struct sigaction kept;
    int signum = w->signum;
    int saved = sigaction(signum, NULL, &kept) == 0;
    ev_signal_stop(loop, w);
    if (saved)
        sigaction(signum, &kept, NULL);
}

/* Wakes the default loop if it exists; async-signal-safe. */
void gp_signal_wake(void)
{
    struct ev_loop *loop = gp_signal_loop;
    if (loop != NULL)
        ev_async_send(loop, &gp_signal_async);
}

static void gp_signal_wrapper(int signum)
{
    int saved_errno = errno;
    void (*chained)(int) = NULL;
    if (signum > 0 && signum < NSIG)
        chained = gp_chained[signum];
    if (chained != NULL)
        chained(signum);
    gp_signal_wake();
    errno = saved_errno;
}

/* Put gp_signal_wrapper in front of the handler installed for signum, which
   the caller has just installed through Python's signal.signal (CPython's C
   handler).  Returns 1 when the wrapper is in place, 0 when the handler is
   not one we can chain (SIG_DFL, SIG_IGN, a three-argument handler: left
   alone), -1 on error (errno set).  Python's signal.signal replaces the
   wrapper with whatever it installs next (SIG_DFL, SIG_IGN, its own handler),
   so nothing needs undoing; the stale entry in gp_chained is then unused. */
int gp_signal_chain(int signum)
{
    struct sigaction current, ours;
    if (signum <= 0 || signum >= NSIG) {
        errno = EINVAL;
        return -1;
    }
    if (sigaction(signum, NULL, &current) != 0)
        return -1;
    if (current.sa_flags & SA_SIGINFO)
        return 0;
    if (current.sa_handler == gp_signal_wrapper)
        return 1;
    if (current.sa_handler == SIG_DFL || current.sa_handler == SIG_IGN)
        return 0;
    /* Set before the swap: a signal in between still reaches CPython's
       handler directly, one after it reaches it through the wrapper. */
    gp_chained[signum] = current.sa_handler;
    ours = current;
    ours.sa_handler = gp_signal_wrapper;
    return sigaction(signum, &ours, NULL) == 0 ? 1 : -1;
}

/* -- frame stacks of new greenlets ------------------------------------------
   See "Frame stacks of new greenlets" in _libev_build.py.  CPython 3.11+ gives
   every new greenlet a data-stack chunk of GP_CHUNK bytes through its arena
   allocator (an mmap, and a munmap when the greenlet's last frame returns);
   chunks of that size come from slabs of GP_SLAB_CHUNKS here instead, and
   every other request goes to the allocator that was in place. */
#ifndef PYPY_VERSION
#ifdef Py_LIMITED_API
/* Outside the limited API this module is built for; unchanged since 3.4. */
typedef struct {
    void *ctx;
    void *(*alloc)(void *ctx, size_t size);
    void (*free)(void *ctx, void *ptr, size_t size);
} PyObjectArenaAllocator;
PyAPI_FUNC(void) PyObject_GetArenaAllocator(PyObjectArenaAllocator *allocator);
PyAPI_FUNC(void) PyObject_SetArenaAllocator(PyObjectArenaAllocator *allocator);
#endif
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

#define GP_CHUNK ((size_t)16384)          /* CPython's DATA_STACK_CHUNK_SIZE */
#define GP_SLAB_CHUNKS 64
#define GP_SLAB (GP_CHUNK * GP_SLAB_CHUNKS) /* 1 MiB, aligned to its size */
#define GP_ALL_FREE (~(uint64_t)0)
#define GP_SPARE_SLABS 2                  /* empty slabs kept for the next burst */

typedef struct gp_slab {
    char *base;
    uint64_t free;                        /* bit i set: chunk i is free */
    struct gp_slab *next, *prev;          /* in gp_partial while free != 0 */
    struct gp_slab *chain;                /* in its gp_slabs bucket */
} gp_slab;

static PyObjectArenaAllocator gp_prior;
static int gp_chunks_installed = 0;
static gp_slab **gp_slabs;                /* hash of slabs by base, chained */
static size_t gp_nbuckets, gp_nslabs;
static gp_slab *gp_partial;               /* slabs with a free chunk */
static int gp_empty_slabs;
/* CPython calls its arena allocator with the GIL held, but interpreters with a
   GIL of their own (3.12+) may call it at once. */
static char gp_chunks_lock;

static void gp_chunks_acquire(void)
{
    while (__atomic_test_and_set(&gp_chunks_lock, __ATOMIC_ACQUIRE))
        ;
}
static void gp_chunks_release(void) { __atomic_clear(&gp_chunks_lock, __ATOMIC_RELEASE); }
static void gp_chunks_forked(void) { __atomic_clear(&gp_chunks_lock, __ATOMIC_RELEASE); }

static size_t gp_bucket(const void *base, size_t nbuckets)
{
    return ((uintptr_t)base / GP_SLAB) & (nbuckets - 1);
}

static gp_slab *gp_slab_of(void *ptr)
{
    char *base = (char *)((uintptr_t)ptr & ~(uintptr_t)(GP_SLAB - 1));
    gp_slab *s = gp_slabs[gp_bucket(base, gp_nbuckets)];
    while (s != NULL && s->base != base)
        s = s->chain;
    return s;
}

static void gp_slab_list(gp_slab *s)
{
    s->prev = NULL;
    s->next = gp_partial;
    if (gp_partial != NULL)
        gp_partial->prev = s;
    gp_partial = s;
}

static void gp_slab_unlist(gp_slab *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        gp_partial = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
}

/* A new empty slab, listed and hashed; NULL when memory is short. */
static gp_slab *gp_slab_new(void)
{
    gp_slab *s;
    char *raw, *base;
    size_t i;
    if (gp_nslabs == gp_nbuckets) {
        size_t nbuckets = gp_nbuckets * 2;
        gp_slab **slabs = (gp_slab **)calloc(nbuckets, sizeof(gp_slab *));
        if (slabs == NULL)
            return NULL;
        for (i = 0; i < gp_nbuckets; i++) {
            while ((s = gp_slabs[i]) != NULL) {
                gp_slabs[i] = s->chain;
                s->chain = slabs[gp_bucket(s->base, nbuckets)];
                slabs[gp_bucket(s->base, nbuckets)] = s;
            }
        }
        free(gp_slabs);
        gp_slabs = slabs;
        gp_nbuckets = nbuckets;
    }
    s = (gp_slab *)malloc(sizeof(gp_slab));
    if (s == NULL)
        return NULL;
    /* Twice the size, then the unaligned ends back: an aligned slab is found
       from any of its chunks by masking the address. */
    raw = (char *)mmap(NULL, 2 * GP_SLAB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
    if (raw == MAP_FAILED) {
        free(s);
        return NULL;
    }
    base = (char *)(((uintptr_t)raw + GP_SLAB - 1) & ~(uintptr_t)(GP_SLAB - 1));
    if (base > raw)
        munmap(raw, (size_t)(base - raw));
    munmap(base + GP_SLAB, (size_t)(raw + 2 * GP_SLAB - (base + GP_SLAB)));
    s->base = base;
    s->free = GP_ALL_FREE;
    s->chain = gp_slabs[gp_bucket(base, gp_nbuckets)];
    gp_slabs[gp_bucket(base, gp_nbuckets)] = s;
    gp_nslabs++;
    gp_empty_slabs++;
    gp_slab_list(s);
    return s;
}

static void gp_slab_drop(gp_slab *s)
{
    gp_slab **link = &gp_slabs[gp_bucket(s->base, gp_nbuckets)];
    while (*link != s)
        link = &(*link)->chain;
    *link = s->chain;
    gp_slab_unlist(s);
    gp_nslabs--;
    munmap(s->base, GP_SLAB);
    free(s);
}

static void *gp_chunk_alloc(void *ctx, size_t size)
{
    gp_slab *s;
    void *chunk = NULL;
    (void)ctx;
    if (size == GP_CHUNK) {
        gp_chunks_acquire();
        if ((s = gp_partial) != NULL || (s = gp_slab_new()) != NULL) {
            if (s->free == GP_ALL_FREE)
                gp_empty_slabs--;
            chunk = s->base + GP_CHUNK * (size_t)__builtin_ctzll(s->free);
            s->free &= s->free - 1;
            if (s->free == 0)
                gp_slab_unlist(s);
        }
        gp_chunks_release();
        if (chunk != NULL)
            return chunk;
    }
    return gp_prior.alloc(gp_prior.ctx, size);
}

static void gp_chunk_free(void *ctx, void *ptr, size_t size)
{
    gp_slab *s = NULL;
    (void)ctx;
    if (size == GP_CHUNK) {
        gp_chunks_acquire();
        if ((s = gp_slab_of(ptr)) != NULL) {
            if (s->free == 0)
                gp_slab_list(s);
            s->free |= (uint64_t)1 << ((size_t)((char *)ptr - s->base) / GP_CHUNK);
            if (s->free == GP_ALL_FREE && ++gp_empty_slabs > GP_SPARE_SLABS) {
                gp_empty_slabs--;
                gp_slab_drop(s);
            }
        }
        gp_chunks_release();
    }
    if (s == NULL)  /* not ours: the prior allocator's, from before or too big */
        gp_prior.free(gp_prior.ctx, ptr, size);
}

/* Returns 1 when installed now, 0 when it was already, -1 without memory. */
int gp_stack_chunks_install(void)
{
    PyObjectArenaAllocator ours;
    if (gp_chunks_installed)
        return 0;
    gp_nbuckets = 64;
    gp_slabs = (gp_slab **)calloc(gp_nbuckets, sizeof(gp_slab *));
    if (gp_slabs == NULL)
        return -1;
    PyObject_GetArenaAllocator(&gp_prior);
    ours.ctx = NULL;
    ours.alloc = gp_chunk_alloc;
    ours.free = gp_chunk_free;
    PyObject_SetArenaAllocator(&ours);
    pthread_atfork(NULL, NULL, gp_chunks_forked);
    gp_chunks_installed = 1;
    return 1;
}

/* For tests: the slabs mapped now and the chunks handed out of them. */
void gp_stack_chunks_stats(long *slabs, long *chunks)
{
    size_t i;
    gp_slab *s;
    long used = 0;
    gp_chunks_acquire();
    for (i = 0; i < gp_nbuckets; i++)
        for (s = gp_slabs[i]; s != NULL; s = s->chain)
            used += GP_SLAB_CHUNKS - __builtin_popcountll(s->free);
    *slabs = (long)gp_nslabs;
    *chunks = used;
    gp_chunks_release();
}
#else
int gp_stack_chunks_install(void) { return 0; }
void gp_stack_chunks_stats(long *slabs, long *chunks) { *slabs = 0; *chunks = 0; }
#endif
