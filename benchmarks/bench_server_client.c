/* The echo load generator used by bench_server.py when a C compiler is there.
 *
 *     bench_server_client PORT CONNECTIONS SECONDS [ROUND_TRIPS]
 *
 * Why C: on a small machine the load generator shares the CPUs with the server,
 * and a Python client tops out near the rate of the servers it measures, which
 * squeezes every ratio towards 1.  This one costs a few microseconds per round
 * trip, so the server is what is measured.  Same protocol as the Python client
 * (bench_server_client.py): each connection sends 1 KiB and waits for all of it
 * to come back before sending again.  Prints {"round_trips_per_s": N, ...}.
 *
 * With ROUND_TRIPS it stops after that many round trips (SECONDS is then only a
 * bound): a fixed amount of work, for counting a server's system calls and
 * instructions per round trip (bench_server_profile.py).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SIZE 1024

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s PORT CONNECTIONS SECONDS [ROUND_TRIPS]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), count = atoi(argv[2]);
    double seconds = atof(argv[3]);
    long limit = argc == 5 ? atol(argv[4]) : -1;
    static char message[SIZE], buffer[65536];
    memset(message, 'x', SIZE);
    int *left = calloc(65536, sizeof(int)), *fds = calloc(count, sizeof(int));
    int ep = epoll_create1(0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < count; i++) {
        int fd = fds[i] = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("connect"); return 1; }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        left[fd] = SIZE;
        if (send(fd, message, SIZE, 0) != SIZE) { perror("send"); return 1; }
    }
    long round_trips = 0;
    double started = now(), deadline = started + seconds;
    struct epoll_event events[256];
    while (now() < deadline && round_trips != limit) {
        int n = epoll_wait(ep, events, 256, 500);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            ssize_t got = recv(fd, buffer, sizeof buffer, 0);
            if (got <= 0) { fprintf(stderr, "the server closed a connection\n"); return 1; }
            left[fd] -= got;
            if (left[fd] <= 0) {
                if (++round_trips == limit) break;
                left[fd] = SIZE;
                if (send(fd, message, SIZE, 0) != SIZE) { perror("send"); return 1; }
            }
        }
    }
    double elapsed = now() - started;
    /* Hang up politely: a socket closed with unread data (the echoes still on
       their way) is reset, and the server would see ECONNRESET errors. */
    for (int i = 0; i < count; i++) {
        shutdown(fds[i], SHUT_WR);
        while (recv(fds[i], buffer, sizeof buffer, 0) > 0) {}
        close(fds[i]);
    }
    printf("{\"round_trips_per_s\": %f, \"round_trips\": %ld}\n", round_trips / elapsed,
           round_trips);
    return 0;
}
